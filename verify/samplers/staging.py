"""Passing pytrees that mix arrays and callables (score functions, start laws) through ``jax.jit``.

A score tuple may hold exact scores (pytrees of arrays), ``jax.tree_util.Partial`` objects, or plain Python
functions. :func:`partition` splits such a tree into its array leaves, which ``jax.jit`` traces, and a hashable
static part (tree structure plus every non-array leaf), which it uses as a cache key; :func:`combine` rebuilds the
tree inside the traced function. Equal structures with new arrays therefore reuse the compiled sampler.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np


class Static(NamedTuple):
    """The hashable part of a partitioned pytree: its structure and its non-array leaves."""

    treedef: object
    leaves: tuple


def _is_array(leaf) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray))


def partition(tree):
    """``(arrays, static)``: the array leaves (``None`` elsewhere) and a hashable :class:`Static`."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    arrays = tuple(leaf if _is_array(leaf) else None for leaf in leaves)
    static = Static(treedef, tuple(None if _is_array(leaf) else leaf for leaf in leaves))
    try:
        hash(static)
    except TypeError as err:
        raise TypeError(
            f"a non-array leaf of {type(tree).__name__} is not hashable ({err}); score functions and start laws must "
            "be pytrees of arrays, jax.tree_util.Partial objects or plain functions."
        ) from None
    return arrays, static


def combine(arrays, static: Static):
    """Inverse of :func:`partition`."""
    leaves = [a if s is None else s for a, s in zip(arrays, static.leaves)]
    return jax.tree_util.tree_unflatten(static.treedef, leaves)


# XLA:CPU (jaxlib 0.10) hands reductions such as the per-swarm log-sum-exp to its YNNPACK library fusions, which
# on the samplers' shapes (a reduction over 16–64 particles of a long elementwise chain) ran 4–14× slower than XLA's
# own loop fusions (measured: 13 s vs 1.1 s of CPU time for 500 FKC weight updates of 5000 × 64 particles; the whole
# FKC run 10.5 s vs 4.6 s). The samplers therefore compile with those library fusions switched off; other backends
# ignore the option.
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


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
    return call
