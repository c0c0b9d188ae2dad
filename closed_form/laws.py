r"""Exact output laws of reverse-time samplers driven by an affine score *field*.

A *field* is a callable ``t ↦ (A_t, b_t)`` meaning the score used at diffusion time ``t`` is
``ŝ(x, t) = −A_t x + b_t`` (``A_t`` of shape ``(d, d)``, ``b_t`` of shape ``(d,)``). Such fields are what naive
composition of Gaussian sources gives (:meth:`Composition.naive_field`), what the exact diffused target gives
(:meth:`Composition.target_field`), and what affine score errors add to either (:func:`add_fields`).

With an affine score and a Gaussian start the sampler's state stays Gaussian, and its mean ``m`` and covariance ``P``
obey closed recursions (derivation in ``paper_notes.md``, "Affine fields and their exact laws"). In reverse time
``τ = t_max − t``, ``β = β(t)``:

.. math::
    \text{reverse SDE } dx = [\tfrac12 βx + βŝ]\,dτ + \sqrt{β}\,dW:\quad
        \dot m = β\big((\tfrac12 I − A)m + b\big),\quad
        \dot P = β\big((\tfrac12 I − A)P + P(\tfrac12 I − A)^\top + I\big);

    \text{probability-flow ODE } dx = [\tfrac12 βx + \tfrac12 βŝ]\,dτ:\quad
        \dot m = \tfrac12 β\big((I − A)m + b\big),\quad
        \dot P = \tfrac12 β\big((I − A)P + P(I − A)^\top\big);

    \text{Euler–Maruyama } x' = Mx + c + \sqrt{βh}\,z,\ M = I + hβ(\tfrac12 I − A),\ c = hβ b:\quad
        m' = Mm + c,\quad P' = MPM^\top + βh\,I.

**Tolerance.** The continuous laws integrate these moment ODEs with SciPy's DOP853 (explicit Runge–Kutta of order
8 with adaptive steps) at ``rtol = 1e-11``, ``atol = 0.01·rtol·max(1, |start|)`` and a step cap of 1/16 of the
time span; ``tests/test_laws.py`` measures the achieved error against exact closed forms (``Q_t`` reproduced from
``Q_T``) and asserts it below ``1e-9`` relative. The Euler–Maruyama law is the exact recursion, no tolerance.

**Per eigen-direction.** When every ``A_t`` and the start covariance are diagonal in one orthonormal basis ``V``
(the co-diagonalizable, commuting case: every composition of covariances that share an eigenbasis, such as the
paper's diagonal ones), the moments decouple into ``d`` scalar recursions and ``P`` stays diagonal in ``V``. Two
routes lead there:

* a :class:`CodiagonalField` (built by :func:`codiagonal_field` from a composition) *declares* its basis and gives
  the per-direction coefficients ``(a_t, c_t)`` with ``A_t = V diag(a_t) Vᵀ``, ``b_t = V c_t`` in ``O(d)`` work per
  time — the fast path (dimension 200 in well under a second);
* for any other field the basis is searched from a generic combination of the start covariance and ``A_t`` at a few
  times, and the diagonal form is then *verified* at every time the computation evaluates the field; the general
  matrix recursion is used whenever the verification fails, so this never changes the answer beyond rounding.

**The matrix route.** Without a common basis the laws integrate the ``d² + d`` moment equations (one ``d × d``
product per evaluation). Fields built from Gaussians (:meth:`Composition.naive_field`, :meth:`~Composition.target_field`)
are sums of :class:`CodiagonalField` s, one per source in that source's eigenbasis; such a sum is integrated in the
eigenbasis ``V₀`` of its first part (where that part is diagonal and costs no product; the start is rotated in and
the result out), its coefficients come from one jitted call and each other part costs one BLAS product, so no
evaluation inverts a matrix. Measured by ``benchmarks/exact_laws.py`` (d = 200, three non-commuting sources, 2-core
CPU shared with other work): SDE ≈ 0.8 s, ODE ≈ 0.6 s, Euler–Maruyama(500) ≈ 0.75 s, 8–11× faster than the same laws
with three dense inverses per evaluation; the per-direction route takes 0.04–0.2 s.

``method="general"`` forces the matrix recursion, ``method="diagonal"`` demands the per-direction one
(:class:`NotCodiagonalizableError` if it does not apply).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

from closed_form.errors import (
    CatcompError,
    InvalidTimeError,
    NoClosedFormError,
    NonFiniteInputError,
    NotCodiagonalizableError,
    ShapeMismatchError,
)
from closed_form.gaussian import Gaussian
from closed_form.schedules import diffused_variance, reverse_time_grid

#: Relative size of off-diagonal entries (in the common basis) below which a matrix counts as diagonal there: above
#: rounding of eigenvectors in d = 200 (~1e-12 measured), below the 1e-9 accuracy the laws promise.
DIAGONAL_TOL = 1e-10
#: Default relative tolerance of the moment-ODE integration.
DEFAULT_RTOL = 1e-11
_METHODS = ("auto", "diagonal", "general")


# ---------------------------------------------------------------------------------------------------------- fields
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
        a, c = self.diagonal(t)
        v = jnp.asarray(self.basis)
        return (v * a) @ v.T, v @ c


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

        def diagonal(t):
            parts = [f.diagonal(t) for f in flat]
            return sum(p[0] for p in parts), sum(p[1] for p in parts)

        return CodiagonalField(flat[0].basis, diagonal)

    return FieldSum(flat)


def _same_basis(bases) -> bool:
    """Whether every basis equals the first, exactly (``False`` for traced ones, whose values are unknown)."""
    if any(isinstance(v, jax.core.Tracer) for v in bases):
        return False
    return all(np.array_equal(np.asarray(v), np.asarray(bases[0])) for v in bases)


@dataclass(frozen=True, eq=False)
class FieldSum:
    """The field ``t ↦ (Σ_j A^j_t, Σ_j b^j_t)`` of :func:`add_fields`, keeping its parts so that each is evaluated
    (and jitted, and its compilation cached) on its own."""

    parts: tuple

    def __call__(self, t):
        values = [f(t) for f in self.parts]
        return sum(v[0] for v in values), sum(v[1] for v in values)


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

    def diagonal(t):
        prec = 1.0 / diffused_variance(schedule, var, t)
        return jnp.sum(w * prec, axis=0), jnp.sum(w * prec * (schedule.alpha(t) * mu), axis=0)

    return CodiagonalField(v, diagonal)


def _check_field_output(a, b, dim):
    if np.shape(a)[-2:] != (dim, dim) or np.shape(b)[-1:] != (dim,):
        raise ShapeMismatchError(
            f"the field returned A of shape {np.shape(a)} and b of shape {np.shape(b)}; expected ({dim}, {dim}) and "
            f"({dim},) to match the start distribution."
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise NonFiniteInputError("the field returned non-finite A_t or b_t; an affine score must be finite.")


_NOT_TRACEABLE = (TypeError, jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError)


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
    state = {"jitted": jax.jit(fn)}

    def call(t):
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

        def diagonal(t):
            values = [f.diagonal(t) for f in parts]
            return jnp.concatenate([v[0] for v in values]), jnp.concatenate([v[1] for v in values])

        _FUSED[total] = (bases, as_numpy_field(diagonal))
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


def _into_frame(frame, start):
    """Mean and covariance of ``start`` in the orthonormal ``frame`` (``None``: as they are)."""
    m = np.asarray(start.mean, dtype=np.float64)
    p = np.asarray(start.cov, dtype=np.float64)
    if frame is None:
        return m, p
    p = frame.T @ p @ frame
    return frame.T @ m, 0.5 * (p + p.T)


def _out_of_frame(frame, m, p):
    """The Gaussian with mean ``m`` and covariance ``p`` given in ``frame``, back in the standard basis."""
    if frame is not None:
        m, p = frame @ m, frame @ p @ frame.T
    return Gaussian(m, 0.5 * (p + p.T))


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


def _probe_times(t_lo, t_hi, n=9):
    """Chebyshev points of ``[t_lo, t_hi]``, both ends included (probe times for the basis search)."""
    return 0.5 * (t_lo + t_hi) + 0.5 * (t_hi - t_lo) * np.cos(np.pi * np.arange(n) / (n - 1))


class _Coefficients:
    """How a law reads the field: per direction (``basis`` set, ``diag(t) → (a, c, offdiag ratio)``) or as matrices
    (``basis`` None, ``full(t) → (A, b)``)."""

    def __init__(self, field, start, probe_times, method):
        if method not in _METHODS:
            raise CatcompError(f"method must be one of {_METHODS}, got {method!r}.")
        self.dim = start.dim
        self.field = field
        self.full = as_numpy_field(field)
        self.basis = None
        self._diag = None
        if method == "general":
            return
        start_cov = np.asarray(start.cov)
        if isinstance(field, CodiagonalField):
            v = np.asarray(field.basis)
            if np.max(_offdiag_ratio(v.T @ start_cov @ v)) <= DIAGONAL_TOL:
                self.basis = v
                diag = as_numpy_field(field.diagonal)
                self._diag = lambda t: (*diag(t), 0.0)
        else:
            a_probe = np.stack([self.full(t)[0] for t in probe_times])
            _check_field_output(a_probe, np.zeros(self.dim), self.dim)
            v = _common_eigenbasis(np.concatenate([start_cov[None], a_probe]))
            if v is not None:
                self.basis = v
                self._diag = _projector(v, self.full)
        if self.basis is None and method == "diagonal":
            raise NotCodiagonalizableError(
                "method='diagonal' needs A_t and the start covariance to be diagonal in one orthonormal basis; they "
                "are not. Use method='auto' or 'general'."
            )
        self.method = method

    def diag(self, t):
        return self._diag(t)

    def matrix_frame(self):
        """``(V, full)`` for the matrix route: ``full(t)`` gives ``(VᵀA_tV, Vᵀb_t)`` in the orthonormal frame ``V``
        (``None``: the standard basis). A sum of CodiagonalFields is read in the basis of its first part
        (:func:`_framed_codiagonal_sum`); any other field as it is."""
        if isinstance(self.field, FieldSum) and all(isinstance(f, CodiagonalField) for f in self.field.parts):
            frame, full = _framed_codiagonal_sum(self.field)
            n = frame.shape[0]
            _check_field_output(np.zeros((n, n)), np.zeros(n), self.dim)  # before the start is rotated into it
            return frame, full
        return None, self.full

    def fall_back(self, worst):
        """Leave the per-direction route after its verification failed (off-diagonal ratio ``worst``)."""
        if self.method == "diagonal":
            raise NotCodiagonalizableError(
                f"A_t is not diagonal in the common basis at every evaluated time (off-diagonal ratio {worst:.3g}); "
                "use method='auto' or 'general'."
            )
        self.basis = None

    def start_in_basis(self, start):
        v = self.basis
        return v.T @ np.asarray(start.mean), np.diagonal(v.T @ np.asarray(start.cov) @ v).copy()

    def gaussian(self, mean_v, var_v):
        v = self.basis
        cov = (v * var_v) @ v.T
        return Gaussian(v @ mean_v, 0.5 * (cov + cov.T))


def _projector(v, full):
    """``t ↦ (diag(VᵀA_tV), Vᵀb_t, offdiag ratio of VᵀA_tV)`` from the NumPy field evaluator ``full``."""
    identity = bool(np.array_equal(v, np.eye(v.shape[0])))

    def project(t):
        a, b = full(t)
        av = a if identity else v.T @ a @ v
        bv = b if identity else v.T @ b
        return np.diagonal(av), bv, float(_offdiag_ratio(av))

    return project


def _check_start(start):
    if not isinstance(start, Gaussian):
        raise CatcompError(
            f"start must be a Gaussian (e.g. Gaussian.standard(d), π_T or the exact Q_T), got {type(start).__name__}."
        )


# ---------------------------------------------------------------------------------------------------------- EM
def euler_maruyama_law(field, schedule, start, n_steps: int = 500, eps: float = 1e-5, method: str = "auto"):
    r"""Exact law of the Euler–Maruyama reverse-SDE sampler on the samplers' grid.

    The grid is :func:`closed_form.reverse_time_grid` ``(schedule, n_steps, eps)``: ``n_steps`` uniform steps from
    ``T`` down to ``0``, clamped to ``[eps, T − eps]`` (the paper's: 500 steps, ``eps = 1e-5``). Step ``k`` uses
    ``t_k = grid[k]``, ``h_k = grid[k] − grid[k+1]``, ``β_k = β(t_k)`` and ``(A_k, b_k) = field(t_k)``:

    .. math:: x_{k+1} = x_k + h_k β_k\big(\tfrac12 x_k − A_k x_k + b_k\big) + \sqrt{β_k h_k}\,z_k,

    so with ``M_k = I + h_kβ_k(\tfrac12 I − A_k)``, ``c_k = h_kβ_k b_k``, exactly
    ``m_{k+1} = M_k m_k + c_k`` and ``P_{k+1} = M_k P_k M_k^\top + β_k h_k I``.

    Parameters
    ----------
    field : callable ``t ↦ (A_t, b_t)``
    schedule : VPSchedule or CosineSchedule
    start : Gaussian
        Law of the sampler's state at ``grid[0]`` (``N(0, I)`` in the paper).
    n_steps : int
    eps : float
        Clamp of the grid, ``0 ≤ eps < T/2``.
    method : {"auto", "diagonal", "general"}
        Per-eigen-direction recursion when valid (verified at every grid time), forced, or the matrix recursion.

    Returns
    -------
    Gaussian
        The exact law of ``x`` after the last step (at time ``grid[-1]``).
    """
    _check_start(start)
    grid = reverse_time_grid(schedule, n_steps, eps)
    times, h = grid[:-1], grid[:-1] - grid[1:]
    beta_h = np.asarray(schedule.beta(times), dtype=np.float64) * h
    coef = _Coefficients(field, start, times[np.unique(np.linspace(0, len(times) - 1, 9).astype(int))], method)
    d = start.dim
    if coef.basis is not None:
        rows = [coef.diag(t) for t in times]
        worst = max(float(r[2]) for r in rows)
        if worst <= DIAGONAL_TOL:
            a_all = np.stack([r[0] for r in rows])
            c_all = np.stack([r[1] for r in rows])
            _check_field_output(np.zeros((d, d)), c_all, d)
            _check_field_output(np.zeros((d, d)), a_all, d)
            m, p = coef.start_in_basis(start)
            for k in range(len(times)):
                mk = 1.0 + beta_h[k] * (0.5 - a_all[k])
                m = mk * m + beta_h[k] * c_all[k]
                p = mk * mk * p + beta_h[k]
            return coef.gaussian(m, p)
        coef.fall_back(worst)
    eye = np.eye(d)
    frame, full = coef.matrix_frame()
    m, p = _into_frame(frame, start)
    for k in range(len(times)):
        a, b = full(times[k])
        _check_field_output(a, b, d)
        mk = eye + beta_h[k] * (0.5 * eye - a)
        m = mk @ m + beta_h[k] * b
        p = mk @ p @ mk.T + beta_h[k] * eye
        p = 0.5 * (p + p.T)
    return _out_of_frame(frame, m, p)


# ---------------------------------------------------------------------------------------------------------- ODEs
# (k0, ka, noise): in τ the moments obey ṁ = β((k0 I − ka A)m + ka b), Ṗ = β(KP + PKᵀ + noise·I), K = k0 I − ka A.
_DYNAMICS = {"sde": (0.5, 1.0, 1.0), "ode": (0.5, 0.5, 0.0)}


def _moment_ode_law(field, schedule, start, t_min, t_max, kind, rtol, method):
    """Integrate the moment ODEs of ``kind`` ∈ {"sde", "ode"} from ``t_max`` down to ``t_min`` (module doc)."""
    _check_start(start)
    t_max = schedule.T if t_max is None else float(t_max)
    t_min = float(t_min)
    if not (math.isfinite(t_min) and math.isfinite(t_max) and 0.0 <= t_min < t_max <= schedule.T):
        raise InvalidTimeError(f"need 0 ≤ t_min < t_max ≤ T = {schedule.T}; got t_min={t_min}, t_max={t_max}.")
    if not (0.0 < rtol < 1e-3):
        raise CatcompError(f"rtol must lie in (0, 1e-3), got {rtol!r}.")
    k0, ka, noise = _DYNAMICS[kind]
    d = start.dim
    m0 = np.asarray(start.mean, dtype=np.float64)
    p0 = np.asarray(start.cov, dtype=np.float64)
    atol = 1e-2 * rtol * max(1.0, float(np.max(np.abs(m0))), float(np.max(np.abs(p0))))
    # DOP853's local error control alone let the global error reach 2e-8 at rtol 1e-11 with ~20 long steps (measured
    # on NFC_OOD); capping the step at 1/16 of the span keeps it at the level of rtol for ~5% more evaluations.
    max_step = (t_max - t_min) / 16.0

    beta_at = jax.jit(schedule.beta)  # one dispatch per evaluation instead of one per jnp operation

    def beta(t):
        return float(beta_at(np.float64(t)))

    def integrate(rhs, y0):
        # Forward time t decreases from t_max to t_min: d/dt = −d/dτ, hence the minus signs in the right-hand sides.
        sol = solve_ivp(rhs, (t_max, t_min), y0, method="DOP853", rtol=rtol, atol=atol, max_step=max_step)
        if sol.status != 0:
            raise RuntimeError(f"moment-ODE integration failed at rtol={rtol}: {sol.message}")
        return sol.y[:, -1]

    coef = _Coefficients(field, start, _probe_times(t_min, t_max), method)
    if coef.basis is not None:
        worst = [0.0]

        def rhs_diag(t, y):
            a, c, ratio = coef.diag(t)
            worst[0] = max(worst[0], float(ratio))
            g = k0 - ka * a
            return -beta(t) * np.concatenate([g * y[:d] + ka * c, 2.0 * g * y[d:] + noise])

        m_v, p_v = coef.start_in_basis(start)
        y = integrate(rhs_diag, np.concatenate([m_v, p_v]))
        if worst[0] <= DIAGONAL_TOL:
            return coef.gaussian(y[:d], y[d:])
        coef.fall_back(worst[0])
    frame, full = coef.matrix_frame()

    def rhs_full(t, y):
        # KP + PKᵀ + noise·I with K = k0 I − ka A, written into one buffer: one d × d product (AP) per evaluation.
        a, b = full(t)
        _check_field_output(a, b, d)
        m, p = y[:d], y[d:].reshape(d, d)
        ap = a @ p
        out = np.empty_like(y)
        out[:d] = k0 * m - ka * (a @ m) + ka * b
        dp = out[d:].reshape(d, d)
        np.multiply(p, 2.0 * k0, out=dp)
        dp -= ka * ap
        dp -= ka * ap.T
        dp.flat[:: d + 1] += noise
        out *= -beta(t)
        return out

    m_f, p_f = _into_frame(frame, start)
    y = integrate(rhs_full, np.concatenate([m_f, p_f.ravel()]))
    return _out_of_frame(frame, y[:d], y[d:].reshape(d, d))


def sde_law(field, schedule, start, t_min: float = 1e-4, *, t_max=None, rtol: float = DEFAULT_RTOL,
            method: str = "auto") -> Gaussian:
    r"""Exact law at time ``t_min`` of the reverse SDE in continuous time driven by the affine field.

    .. math:: dx = \big[\tfrac12 β x + β(−A_t x + b_t)\big]\,dτ + \sqrt{β}\,dW,\qquad x_{t_{max}} \sim \text{start},

    run from ``t_max`` (default ``T``) down to ``t_min``. Its moments solve
    ``ṁ = β((½I − A)m + b)``, ``Ṗ = β((½I − A)P + P(½I − A)ᵀ + I)`` in ``τ = t_max − t``, integrated by DOP853 at
    relative tolerance ``rtol`` (module doc). With the exact field ``∇log Q_t`` and start ``Q_{t_max}`` the result is
    ``Q_{t_min}``.

    Parameters
    ----------
    field : callable ``t ↦ (A_t, b_t)``
        The score ``ŝ(x, t) = −A_t x + b_t``; JAX-traceable for speed (NumPy fields also work), or a
        :class:`CodiagonalField` for the per-direction fast path.
    schedule : VPSchedule or CosineSchedule
    start : Gaussian
        ``N(0, I)`` (the paper's), ``π_T`` or the exact ``Q_T``.
    t_min : float
        Stopping time, ``0 ≤ t_min < t_max``.
    t_max : float, optional
        Starting time, default ``schedule.T`` (pass ``T − 1e-5`` for schedules with ``β(T) = ∞``).
    rtol : float
        Relative tolerance of the integration, in ``(0, 1e-3)``.
    method : {"auto", "diagonal", "general"}
        See the module doc.

    Returns
    -------
    Gaussian
    """
    return _moment_ode_law(field, schedule, start, t_min, t_max, "sde", rtol, method)


def ode_law(field, schedule, start, t_min: float = 1e-4, *, t_max=None, rtol: float = DEFAULT_RTOL,
            method: str = "auto") -> Gaussian:
    r"""Exact law at time ``t_min`` of the probability-flow ODE in continuous time driven by the affine field.

    .. math:: dx = \tfrac12 β\big[x + (−A_t x + b_t)\big]\,dτ,\qquad x_{t_{max}} \sim \text{start},

    whose moments solve ``ṁ = ½β((I − A)m + b)``, ``Ṗ = ½β((I − A)P + P(I − A)ᵀ)``. Parameters as :func:`sde_law`.
    """
    return _moment_ode_law(field, schedule, start, t_min, t_max, "ode", rtol, method)
