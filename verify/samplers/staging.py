"""How the samplers are compiled: ``jax.jit`` with XLA:CPU options chosen for them.

Score functions, start laws and the sampler model are pytrees (:mod:`verify.samplers.model`), so ``jax.jit`` takes
them as arguments directly; equal structures with new arrays reuse the compiled sampler.
"""

from __future__ import annotations

import jax

# XLA:CPU (jaxlib 0.10) hands reductions such as the per-swarm log-sum-exp to its YNNPACK library fusions, which
# on the samplers' shapes (a reduction over 16–64 particles of a long elementwise chain) ran 4–14× slower than XLA's
# own loop fusions (measured: 13 s vs 1.1 s of CPU time for 500 FKC weight updates of 5000 × 64 particles; the whole
# FKC run 10.5 s vs 4.6 s). The samplers therefore compile with those library fusions switched off.
#
# XLA:CPU also asks LLVM for 256-bit vectors by default, even where the processor has 512-bit ones (AVX-512). The
# samplers' move — hashed noise, the inverse error function, the scores — is one long elementwise loop, and with
# 512-bit vectors it ran 1.6–1.8× faster (the naive sampler, 5000 × 64 and × 256 particles, float64, this project's
# AVX-512 machine; FKC in float32 1.4×, in float64 1.0–1.1×), with identical results. Where the processor has no
# 512-bit vectors the preference has no effect. Other backends ignore both options.
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "", "xla_cpu_prefer_vector_width": 512}


def jit_sampler(fun, static_argnames):
    """``jax.jit(fun, static_argnames=...)`` with :data:`CPU_COMPILER_OPTIONS` when the default backend is the CPU.

    The backend is looked up at the first call, not at import, so that ``XLA_FLAGS`` and platform settings made
    after importing :mod:`verify` still apply.
    """
    compiled = {}

    def call(*args, **kwargs):
        if "fn" not in compiled:
            options = CPU_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
            compiled["fn"] = jax.jit(fun, static_argnames=static_argnames, compiler_options=options)
        return compiled["fn"](*args, **kwargs)

    call.__wrapped__ = fun
    call.__doc__ = fun.__doc__
    call.jitted = compiled
    return call
