r"""Affine score *fields*: the scores whose samplers have exact Gaussian laws (:mod:`closed_form.laws`).

A *field* is a callable ``t ↦ (A_t, b_t)`` meaning the score used at diffusion time ``t`` is
``ŝ(x, t) = −A_t x + b_t`` (``A_t`` of shape ``(d, d)``, ``b_t`` of shape ``(d,)``). Such fields are what naive
composition of Gaussian sources gives (:meth:`Composition.naive_field`), what the exact diffused target gives
(:meth:`Composition.target_field`), and what affine score errors add to either (:func:`add_fields`).

**Per eigen-direction.** A :class:`CodiagonalField` (built by :func:`codiagonal_field` from a composition whose
covariances commute) *declares* an orthonormal basis ``V`` in which every ``A_t`` is diagonal, and gives the
per-direction coefficients ``(a_t, c_t)`` with ``A_t = V diag(a_t) Vᵀ``, ``b_t = V c_t`` in ``O(d)`` work per time.
For any other field :func:`_common_eigenbasis` searches such a basis from a generic combination of the matrices.

**Evaluation.** :func:`as_numpy_field` turns a field into a NumPy evaluator (jitted when traceable). Fields built
from Gaussians are sums (:class:`FieldSum`) of :class:`CodiagonalField` s, one per source in that source's
eigenbasis; such a sum is evaluated in the eigenbasis of its first part (:func:`_framed_codiagonal_sum`), with its
per-direction coefficients from one jitted call and one BLAS product per other part, so that no evaluation inverts a
matrix. The per-direction coefficients of fields built from Gaussians are :class:`~closed_form.pytree.FrozenPytree` s
whose arrays are leaves, so one compiled evaluator serves every field of the same structure and shapes (a new
composition does not compile again); closures compile once per function object.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from closed_form.errors import (
    CatcompError,
    NoClosedFormError,
    NonFiniteInputError,
    NotCodiagonalizableError,
    ShapeMismatchError,
)
from closed_form.gaussian import Gaussian
from closed_form.pytree import FrozenPytree
from closed_form.schedules import diffused_variance
from closed_form.validation import is_concrete_array

#: Relative size of off-diagonal entries (in the common basis) below which a matrix counts as diagonal there: above
#: rounding of eigenvectors in d = 200 (~1e-12 measured), below the 1e-9 accuracy the laws promise.
DIAGONAL_TOL = 1e-10


@dataclass(frozen=True, eq=False)
class CodiagonalField:
    r"""An affine field whose matrices share one orthonormal eigenbasis ``V`` at every time:

    .. math:: A_t = V\,\mathrm{diag}(a_t)\,V^\top,\qquad b_t = V c_t .

    Parameters
    ----------
    basis : ndarray, shape (d, d)
        Orthonormal ``V`` (columns are the eigen-directions).
    diagonal : callable ``t ↦ (a_t, c_t)``
        Per-direction coefficients, both of shape ``(d,)``, written with ``jax.numpy`` so that it can be jitted.

    Calling the object gives the matrix form ``(A_t, b_t)``, so it is a field like any other.
    """

    basis: np.ndarray
    diagonal: Callable

    def __call__(self, t):
        compiled = _compiled_field(self, t)
        if compiled is not None:
            return compiled(t)
        return _MatrixForm.__call__(self, t)


def add_fields(*fields):
    r"""The field of a sum of affine scores: ``t ↦ (Σ_j A^j_t, Σ_j b^j_t)``, i.e. ``ŝ = Σ_j (−A^j_t x + b^j_t)``.

    Use it to add an affine score error ``δ(x, t) = −E_t x + c_t`` (given as the field ``t ↦ (E_t, c_t)``) to a naive
    or exact field. Sums are flattened (a :class:`FieldSum` among the arguments contributes its parts), and the sum of
    :class:`CodiagonalField` s with the same basis is again one.
    """
    if not fields:
        raise CatcompError("add_fields needs at least one field.")
    flat = tuple(part for f in fields for part in (f.parts if isinstance(f, FieldSum) else (f,)))
    if len(flat) == 1:
        return flat[0]
    if all(isinstance(f, CodiagonalField) for f in flat) and _same_basis([f.basis for f in flat]):
        return CodiagonalField(flat[0].basis, _CombinedDiagonals((f.diagonal for f in flat), "sum"))

    return FieldSum(flat)


def _same_basis(bases) -> bool:
    """Whether every basis equals the first, exactly (``False`` for traced ones, whose values are unknown)."""
    if any(isinstance(v, jax.core.Tracer) for v in bases):
        return False
    return all(np.array_equal(np.asarray(v), np.asarray(bases[0])) for v in bases)


class _CombinedDiagonals(FrozenPytree):
    """``t ↦ (Σ_j a_j(t), Σ_j c_j(t))`` (``how="sum"``) or the ``a_j(t)`` and the ``c_j(t)`` concatenated
    (``how="concatenate"``) for the per-direction coefficient functions ``parts``; a pytree whose leaves are the
    parts' arrays when the parts are pytrees themselves (:func:`_pytree_jit`)."""

    _leaves = ("parts",)
    _static = ("how",)

    def __init__(self, parts, how: str):
        self._set(tuple(parts), how)

    def __call__(self, t):
        values = [f(t) for f in self.parts]
        if self.how == "sum":
            return sum(v[0] for v in values), sum(v[1] for v in values)
        return jnp.concatenate([v[0] for v in values]), jnp.concatenate([v[1] for v in values])


class _WeightedPrecisions(FrozenPytree):
    r"""``t ↦ (Σ_i w_i/C_{ik}(t), Σ_i w_i α_t μ̃_{ik}/C_{ik}(t))_k`` with ``C_{ik}(t) = α_t² v_{ik} + σ_t²``: the
    per-direction coefficients of :func:`codiagonal_field`, as a pytree (leaves ``var``, ``mean`` of shape
    ``(n, d)`` and ``weight`` of shape ``(n, 1)``; the schedule static), so that its evaluator compiles once per
    schedule and shapes."""

    _leaves = ("var", "mean", "weight")
    _static = ("schedule",)

    def __init__(self, var, mean, weight, schedule):
        self._set(var, mean, weight, schedule)

    def __call__(self, t):
        prec = 1.0 / diffused_variance(self.schedule, self.var, t)
        w = self.weight
        return jnp.sum(w * prec, axis=0), jnp.sum(w * prec * (self.schedule.alpha(t) * self.mean), axis=0)


@dataclass(frozen=True, eq=False)
class FieldSum:
    """The field ``t ↦ (Σ_j A^j_t, Σ_j b^j_t)`` of :func:`add_fields`, keeping its parts so that each is evaluated
    (and jitted, and its compilation cached) on its own."""

    parts: tuple

    def __call__(self, t):
        compiled = _compiled_field(self, t)
        if compiled is not None:
            return compiled(t)
        return _SumForm.__call__(self, t)


class _MatrixForm(FrozenPytree):
    """A :class:`CodiagonalField` as a pytree (leaves: the basis and the per-direction coefficients' arrays), for
    :func:`_compiled_field`."""

    _leaves = ("basis", "diagonal")

    def __init__(self, basis, diagonal):
        self._set(basis, diagonal)

    def __call__(self, t):
        a, c = self.diagonal(t)
        v = jnp.asarray(self.basis)
        return (v * a) @ v.T, v @ c


class _SumForm(FrozenPytree):
    """A :class:`FieldSum` as a pytree of its parts' pytree forms, for :func:`_compiled_field`."""

    _leaves = ("parts",)

    def __init__(self, parts):
        self._set(tuple(parts))

    def __call__(self, t):
        values = [f(t) for f in self.parts]
        return sum(v[0] for v in values), sum(v[1] for v in values)


def _pytree_form(field):
    """``field`` with every :class:`CodiagonalField` and :class:`FieldSum` in it rewritten as the equivalent pytree
    (the same formulas); other fields as they are."""
    if isinstance(field, CodiagonalField):
        return _MatrixForm(field.basis, field.diagonal)
    if isinstance(field, FieldSum):
        return _SumForm(_pytree_form(f) for f in field.parts)
    return field


#: Per CodiagonalField / FieldSum, its compiled evaluator from :func:`_pytree_jit` (``None`` when some part is not a
#: pytree of arrays), made once per object.
_COMPILED = weakref.WeakKeyDictionary()

def _compiled_field(field, t):
    """The compiled ``t ↦ field(t)`` of a CodiagonalField or FieldSum for a concrete ``t``, or ``None`` (a traced
    ``t``, or a part that is a closure): called directly, such a field is then one compiled program per structure and
    shapes instead of one small program per ``jax.numpy`` operation and shape."""
    if not is_concrete_array(t):
        return None
    if field not in _COMPILED:
        _COMPILED[field] = _pytree_jit(_pytree_form(field), _apply_called)
    return _COMPILED[field]


def codiagonal_field(composition, schedule, which: str = "naive") -> CodiagonalField:
    r"""The naive or exact-target field of a Gaussian composition whose source covariances commute, per direction.

    With ``V`` a common eigenbasis, ``v_{ik} = (VᵀΣ_iV)_{kk}``, ``μ̃_i = Vᵀμ_i``, ``C_{ik}(t) = α_t² v_{ik} + σ_t²``:

    * ``which="naive"``: ``a_k(t) = Σ_i w_i / C_{ik}(t)``, ``c_k(t) = Σ_i w_i α_t μ̃_{ik} / C_{ik}(t)`` — the same
      field as :meth:`Composition.naive_field`, without ``d × d`` inverses;
    * ``which="target"``: ``a_k(t) = 1/(α_t² v_{Qk} + σ_t²)``, ``c_k(t) = α_t μ̃_{Qk} a_k(t)`` with ``v_{Qk}``,
      ``μ̃_Q`` the target's — the same field as :meth:`Composition.target_field`.

    Raises
    ------
    NoClosedFormError
        For mixture sources (their scores are not affine).
    NotCodiagonalizableError
        When the source covariances share no orthonormal eigenbasis.
    CatcompError
        For ``which`` other than ``"naive"`` or ``"target"``.
    """
    if which not in ("naive", "target"):
        raise CatcompError(f"which must be 'naive' or 'target', got {which!r}.")
    if not all(isinstance(s, Gaussian) for s in composition.sources):
        raise NoClosedFormError("per-direction fields need Gaussian sources; this composition has mixture sources.")
    covs = np.stack([np.asarray(s.cov) for s in composition.sources])
    v = _common_eigenbasis(covs)
    if v is None:
        raise NotCodiagonalizableError(
            "the source covariances share no orthonormal eigenbasis (they do not commute); use "
            "Composition.naive_field / target_field with the general matrix laws instead."
        )
    if which == "naive":
        var = jnp.asarray(np.einsum("ji,njk,ki->ni", v, covs, v))
        mu = jnp.asarray(np.stack([v.T @ np.asarray(s.mean) for s in composition.sources]))
        w = jnp.asarray(composition.weights)[:, None]
    else:
        target = composition.target
        var = jnp.asarray(np.diagonal(v.T @ np.asarray(target.cov) @ v))[None]
        mu = jnp.asarray(v.T @ np.asarray(target.mean))[None]
        w = jnp.ones((1, 1))
    return CodiagonalField(v, _WeightedPrecisions(var, mu, w, schedule))


def _check_field_output(a, b, dim):
    if np.shape(a)[-2:] != (dim, dim) or np.shape(b)[-1:] != (dim,):
        raise ShapeMismatchError(
            f"the field returned A of shape {np.shape(a)} and b of shape {np.shape(b)}; expected ({dim}, {dim}) and "
            f"({dim},) to match the start distribution."
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise NonFiniteInputError("the field returned non-finite A_t or b_t; an affine score must be finite.")


_NOT_TRACEABLE = (TypeError, jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError)


@functools.partial(jax.jit, static_argnums=0)
def _apply(treedef, leaves, t):
    """``field(t)`` for the pytree field with structure ``treedef`` and arrays ``leaves``: compiled once per
    structure (classes, static data such as the schedule) and leaf shapes, so that fields rebuilt with new arrays of
    the same shapes (a new composition, a new error) reuse the compilation."""
    return jax.tree_util.tree_unflatten(treedef, leaves)(t)


@functools.partial(jax.jit, static_argnums=0)
def _apply_called(treedef, leaves, t):
    """:func:`_apply` for fields called directly (:func:`_compiled_field`), compiled apart from the evaluators of
    :func:`as_numpy_field`."""
    return jax.tree_util.tree_unflatten(treedef, leaves)(t)


def _pytree_jit(fn, apply=_apply):
    """``t ↦ fn(t)`` through :func:`_apply` when ``fn`` is a :class:`FrozenPytree` whose leaves are all arrays or
    numbers and whose static data hash; ``None`` otherwise. The leaves are put on the device once, here: per call
    this costs about what a jitted closure does (~27 µs against ~22 µs measured), without its compilation."""
    if not isinstance(fn, FrozenPytree):
        return None
    leaves, treedef = jax.tree_util.tree_flatten(fn)
    try:
        hash(treedef)
    except TypeError:
        return None
    if not all(isinstance(x, (np.ndarray, np.generic, jax.Array, float, int)) for x in leaves):
        return None
    if any(isinstance(x, jax.core.Tracer) for x in leaves):  # built inside a trace: its values are not known here
        return None
    return functools.partial(apply, treedef, [jax.device_put(x) for x in leaves])


def as_numpy_field(fn):
    """``t ↦ fn(t)`` as a tuple of float64 NumPy arrays (``t`` a float); ``fn`` jitted when traceable, called
    plainly otherwise. The evaluator the laws (and the bounds of :mod:`theory`) use for fields.

    ``jax.jit`` caches by function identity, so a field object reused across laws compiles once (measured: ~0.2 s
    per compile, then ~20 µs per call in 2-D against ~0.5 ms op by op). Times are evaluated one at a time: a batched
    ``vmap`` is avoided because XLA on CPU compiled a vmapped 200 × 200 inverse for minutes.
    """
    if isinstance(fn, FieldSum):
        codiagonal = [f for f in fn.parts if isinstance(f, CodiagonalField)]
        parts = [as_numpy_field(f) for f in fn.parts if not isinstance(f, CodiagonalField)]
        if codiagonal:
            parts.append(_stacked_codiagonal(fn, codiagonal))

        def call_sum(t):
            values = [f(t) for f in parts]
            return tuple(sum(v[i] for v in values) for i in range(2))

        return call_sum
    if isinstance(fn, CodiagonalField):
        return _codiagonal_evaluator([np.asarray(fn.basis, dtype=np.float64)], as_numpy_field(fn.diagonal))
    # A closure's arrays are compile-time constants, so jax.jit(fn) compiles once per function object (~0.1–0.2 s);
    # a pytree field passes its arrays as arguments instead and shares the compilation with every field like it. A
    # closure is first called plainly: when it returns NumPy arrays (a field written in NumPy) it is called plainly
    # from then on, which compiles nothing; otherwise it is jitted.
    state = {"jitted": _pytree_jit(fn), "probed": False}

    def call(t):
        if state["jitted"] is None and not state["probed"]:
            state["probed"] = True
            out = fn(float(t))
            if not any(isinstance(o, jax.Array) for o in out):
                return tuple(np.asarray(o, dtype=np.float64) for o in out)
            state["jitted"] = jax.jit(fn)
        if state["jitted"] is not None:
            try:
                return tuple(np.asarray(o, dtype=np.float64) for o in state["jitted"](np.float64(t)))
            except _NOT_TRACEABLE:  # a field written in NumPy
                state["jitted"] = None
        return tuple(np.asarray(o, dtype=np.float64) for o in fn(float(t)))

    return call


def _codiagonal_evaluator(bases, diagonal, sizes=None):
    """``t ↦ (Σ_j V_j diag(a_j) V_jᵀ, Σ_j V_j c_j)`` for ``(a, c) = diagonal(t)``, the ``a_j``, ``c_j`` concatenated
    in the order of ``bases``; a basis ``None`` stands for the identity (its part is ``diag(a_j)``, no product, and
    its size comes from ``sizes``). The products go through NumPy's BLAS, one per basis: in d = 200
    ``V diag(a) Vᵀ`` takes ~0.17 ms here, against ~0.4 ms compiled by XLA and ~0.33 ms per basis as one product with
    the bases side by side (measured)."""
    sizes = [v.shape[1] for v in bases] if sizes is None else sizes
    bounds = np.cumsum([0] + list(sizes))

    def call(t):
        a, c = diagonal(t)
        big_a, b = 0.0, 0.0
        for v, lo, hi in zip(bases, bounds[:-1], bounds[1:]):
            if v is None:
                big_a = big_a + np.diag(a[lo:hi])
                b = b + c[lo:hi]
            else:
                big_a = big_a + (v * a[lo:hi]) @ v.T
                b = b + v @ c[lo:hi]
        return big_a, b

    return call


#: Per FieldSum, its CodiagonalField parts fused into one jitted function giving all per-direction coefficients
#: (one dispatch per evaluation instead of one per part; the naive field of k Gaussian sources is such a sum). Kept
#: per object so that it compiles once.
_FUSED = weakref.WeakKeyDictionary()


def _fused(total, parts):
    """``(bases, diagonal)`` of the CodiagonalField ``parts`` of the FieldSum ``total``, made once per object."""
    if total not in _FUSED:
        bases = [np.asarray(f.basis, dtype=np.float64) for f in parts]
        _FUSED[total] = (bases, as_numpy_field(_CombinedDiagonals((f.diagonal for f in parts), "concatenate")))
    return _FUSED[total]


def _stacked_codiagonal(total, parts):
    return _codiagonal_evaluator(*_fused(total, parts))


def _framed_codiagonal_sum(total):
    """``(V₀, t ↦ (V₀ᵀA_tV₀, V₀ᵀb_t))`` for a FieldSum of CodiagonalFields, ``V₀`` the basis of its first part: in that
    frame the first part is ``diag(a₀)`` and costs no product, the others are ``W_j diag(a_j) W_jᵀ`` with
    ``W_j = V₀ᵀV_j`` formed once. For the naive field of three sources that is two products per evaluation instead
    of three."""
    bases, diagonal = _fused(total, total.parts)
    v0 = bases[0]
    framed = [None] + [v0.T @ v for v in bases[1:]]
    return v0, _codiagonal_evaluator(framed, diagonal, sizes=[v.shape[1] for v in bases])


# ---------------------------------------------------------------------------------------------------------- basis
def _offdiag_ratio(m):
    """``max |offdiag(m)| / max |m|`` for a stack of square matrices (last two axes)."""
    m = np.asarray(m)
    off = m * (1.0 - np.eye(m.shape[-1]))
    scale = np.maximum(np.max(np.abs(m), axis=(-2, -1)), np.finfo(np.float64).tiny)
    return np.max(np.abs(off), axis=(-2, -1)) / scale


def _common_eigenbasis(mats):
    """An orthonormal ``V`` with ``Vᵀ M V`` diagonal (to :data:`DIAGONAL_TOL`) for every ``M`` in ``mats``, or ``None``.

    Returns the identity when every matrix is already diagonal. Otherwise ``V`` diagonalizes the generic combination
    ``Σ_j c_j M_j/‖M_j‖`` with fixed, rationally independent coefficients ``c_j = √(j+2)``: for commuting symmetric
    matrices its eigenvectors are common eigenvectors unless an eigenvalue coincidence makes the combination
    degenerate where the matrices are not, which the final check catches (then ``None``).
    """
    mats = np.asarray(mats)
    if np.max(_offdiag_ratio(mats)) <= DIAGONAL_TOL:
        return np.eye(mats.shape[-1])
    sym = 0.5 * (mats + np.swapaxes(mats, -1, -2))
    norms = np.maximum(np.max(np.abs(sym), axis=(-2, -1)), np.finfo(np.float64).tiny)
    coeffs = np.sqrt(np.arange(2, mats.shape[0] + 2, dtype=np.float64))
    _, v = np.linalg.eigh(np.einsum("j,jkl->kl", coeffs / norms, sym))
    # Checked on the matrices themselves, not their symmetric parts: a non-symmetric A_t (an affine score error need
    # not be symmetric) is diagonal in V only if both parts are.
    if np.max(_offdiag_ratio(v.T @ mats @ v)) <= DIAGONAL_TOL:
        return v
    return None


__all__ = ["DIAGONAL_TOL", "CodiagonalField", "FieldSum", "add_fields", "as_numpy_field", "codiagonal_field"]
