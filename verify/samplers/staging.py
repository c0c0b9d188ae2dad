"""How the samplers are compiled: ``jax.jit`` with XLA:CPU options chosen for them.

Score functions, start laws and the sampler model are pytrees (:mod:`verify.samplers.model`), so ``jax.jit`` takes
them as arguments directly; equal structures with new arrays reuse the compiled sampler.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

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


def computed_once(tree, token):
    """``tree`` (a pytree of float arrays) unchanged, but computed once: on the CPU it passes through a conditional.

    XLA:CPU may fuse an elementwise producer into each fusion that consumes it and recompute it there. A value with
    several consumers in different fusions — the authors' kernel's moved particles, read by the potential and by the
    gathers of the particles and of their scores — was then computed once per consumer, with its Gaussian noise: three
    times per step. A conditional is a boundary XLA's fusion does not cross, so its output is computed once and stored.
    Measured (NFC_OOD, 5000 swarms × 500 steps, this project's 2-core CPU): the authors' kernel 4.8 → 1.75 s of wall
    time at 64 particles per swarm, 17.1 → 5.6 s at 256, the same samples bit for bit.

    ``token`` is a traced positive scalar (the step length): the predicate ``token > 0`` is unknown to the compiler.
    The other branch adds ``0.0``, which changes nothing but the sign of a zero (a branch identical to the first
    would be simplified away together with the conditional). Other backends get ``tree`` itself: a GPU's conditional
    reads its predicate back to the host, a synchronization at every step.
    """
    if jax.default_backend() != "cpu":
        return tree
    return jax.lax.cond(jnp.asarray(token) > 0, lambda v: v,
                        lambda v: jax.tree_util.tree_map(lambda a: a + jnp.zeros((), a.dtype), v), tree)
