r"""Perturbed score functions for the samplers: ``ŝ_i(x, t) = s_i(x, t) + δ_i(x, t)``.

:class:`PerturbedScore` wraps a score function (a pytree such as :class:`verify.samplers.scores.GaussianScore`) and an error
model of :mod:`closed_form.perturbations`; it is itself a pytree: the base score's arrays are leaves, and so are the
error model's when it is a pytree of arrays (:func:`closed_form.perturbations.precision_error`, and
:class:`~closed_form.perturbations.DensityPowerError`), so that perturbed scores of one structure share the samplers'
compiled code. An error model that is not (an affine error given by a closure, such as
:func:`~closed_form.perturbations.misspecification_error`'s) is a static field compared by identity: the samplers
then compile once per error object. :class:`AffineErrorScore` is the all-array form of affine errors.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from closed_form.errors import ShapeMismatchError
from verify.samplers.scores import source_scores


def _is_array_tree(tree) -> bool:
    return all(isinstance(leaf, (jax.Array, np.ndarray, np.generic, float, int))
               for leaf in jax.tree_util.tree_leaves(tree))


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True, eq=False)
class PerturbedScore:
    """``base(x, t) + error.delta(x, t)``; ``error=None`` leaves ``base`` unchanged. A pytree (module doc)."""

    base: object
    error: object

    def tree_flatten(self):
        if self.error is None or _is_array_tree(self.error):
            return (self.base, self.error), None
        return (self.base,), _ByIdentity(self.error)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0], children[1] if aux is None else aux.value)

    @property
    def dim(self) -> int:
        return self.base.dim

    def __call__(self, x, t):
        out = self.base(x, t)
        return out if self.error is None else out + self.error.delta(x, t)

    def __hash__(self):  # the error model is compared by identity
        return id(self)


class _ByIdentity:
    """A static value compared and hashed by identity (an error model that is not a pytree of arrays)."""

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, _ByIdentity) and other.value is self.value

    def __hash__(self):
        return id(self.value)


def perturbed_scores(composition, schedule, errors) -> tuple:
    """The exact source scores of ``composition`` with ``errors[i]`` (an error model or ``None``) added to source
    ``i``'s score. A :class:`~closed_form.perturbations.MixtureMisspecificationError` is replaced by what it equals,
    the exact score of its misspecified mixture (one mixture-score evaluation instead of three)."""
    from closed_form.perturbations import MixtureMisspecificationError
    from verify.samplers.scores import exact_score

    errors = tuple(errors)
    if len(errors) != len(composition.sources):
        raise ShapeMismatchError(
            f"got {len(errors)} error model(s) for {len(composition.sources)} sources; pass one per source (None for "
            "an exact score)."
        )
    return tuple(exact_score(e.fitted, schedule) if isinstance(e, MixtureMisspecificationError) else PerturbedScore(s, e)
                 for s, e in zip(source_scores(composition, schedule), errors))


@partial(jax.tree_util.register_dataclass, data_fields=["base", "scale", "matrix", "shift"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class AffineErrorScore:
    r"""A Gaussian source's exact score with an affine error whose every parameter is an array (a pytree leaf):

    .. math:: ŝ(x, t) = \Big(1 + \frac{κ}{\sqrt{\operatorname{tr} C_t^{-1}}}\Big)\, s(x, t) − E x + c,

    ``s`` the exact score of ``base`` (a :class:`verify.samplers.scores.GaussianScore`, ``C_t`` its diffused covariance),
    ``κ = scale``, ``E = matrix`` (any ``d × d``, constant in time) and ``c = shift``. With ``E = 0``, ``c = 0`` and
    ``κ = sign·ε`` it is ``s`` plus :func:`closed_form.perturbations.precision_error` ``(source, schedule, ε, sign)``
    (``δ = sign·η(t)·s`` with ``η = ε/√tr C_t⁻¹``); with ``κ = 0`` a time-constant affine error, non-symmetric when
    ``E`` is. Unlike :class:`PerturbedScore`, whose error model is static, equal structures with other values reuse
    the samplers' compiled code. :meth:`field` is the same score as an affine field for :mod:`closed_form`.
    """

    base: object
    scale: jax.Array
    matrix: jax.Array
    shift: jax.Array

    @classmethod
    def build(cls, base, scale: float = 0.0, matrix=None, shift=None) -> "AffineErrorScore":
        d = base.dim
        matrix = np.zeros((d, d)) if matrix is None else matrix
        shift = np.zeros(d) if shift is None else shift
        # dtype given: a NumPy input is transferred, not converted by a compiled program.
        matrix, shift = jnp.asarray(matrix, dtype=jnp.float64), jnp.asarray(shift, dtype=jnp.float64)
        if matrix.shape != (d, d) or shift.shape != (d,):
            raise ShapeMismatchError(f"matrix must be ({d}, {d}) and shift ({d},), got {matrix.shape} and {shift.shape}.")
        return cls(base, jnp.asarray(float(scale), dtype=jnp.float64), matrix, shift)

    @property
    def dim(self) -> int:
        return self.base.dim

    def _factor(self, t):
        _, v = self.base._variances(t)
        return 1.0 + self.scale / jnp.sqrt(jnp.sum(1.0 / v))

    def __call__(self, x, t):
        return _affine_error_score(self, x, t)

    def field(self, t):
        """``t ↦ (A_t, b_t)`` with ``ŝ = −A_t x + b_t``."""
        return _affine_error_field(self, t)


# Module-level jitted cores (the score is a pytree argument): one program per shape when called outside a trace.
@jax.jit
def _affine_error_score(score, x, t):
    return score._factor(t) * score.base(x, t) - x @ score.matrix.T + score.shift


@jax.jit
def _affine_error_field(score, t):
    a, b = score.base.affine(t)
    k = score._factor(t)
    return k * a + score.matrix, k * b + score.shift
