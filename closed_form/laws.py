r"""Exact output laws of reverse-time samplers driven by an affine score *field*.

A *field* is a callable ``t ↦ (A_t, b_t)`` meaning the score used at diffusion time ``t`` is
``ŝ(x, t) = −A_t x + b_t`` (``A_t`` of shape ``(d, d)``, ``b_t`` of shape ``(d,)``). Such fields are what naive
composition of Gaussian sources gives (:meth:`Composition.naive_field`), what the exact diffused target gives
(:meth:`Composition.target_field`), and what affine score errors add to either (:func:`add_fields`).

With an affine score and a Gaussian start the sampler's state stays Gaussian, and its mean ``m`` and covariance ``P``
obey closed recursions (``math.md`` §2; derivation in ``paper_notes.md``). In reverse time ``τ = T − t``,
``β = β(T − τ)``:

.. math::
    \text{reverse SDE } dx = [\tfrac12 βx + βŝ]\,dτ + \sqrt{β}\,dW:\quad
        \dot m = β\big((\tfrac12 I − A)m + b\big),\quad
        \dot P = β\big((\tfrac12 I − A)P + P(\tfrac12 I − A)^\top + I\big);

    \text{probability-flow ODE } dx = [\tfrac12 βx + \tfrac12 βŝ]\,dτ:\quad
        \dot m = \tfrac12 β\big((I − A)m + b\big),\quad
        \dot P = \tfrac12 β\big((I − A)P + P(I − A)^\top\big);

    \text{Euler–Maruyama } x' = Mx + c + \sqrt{βh}\,z,\ M = I + hβ(\tfrac12 I − A),\ c = hβ b:\quad
        m' = Mm + c,\quad P' = MPM^\top + βh\,I.

The continuous laws integrate these moment ODEs with SciPy's DOP853 (explicit Runge–Kutta of order 8, adaptive step)
at ``rtol = 1e-11`` and ``atol = 1e-13·max(1, |start|)`` by default; the tests measure the achieved accuracy against
exact closed forms (better than ``1e-9`` relative). The Euler–Maruyama law is the exact recursion, no tolerance.

Fast path: when every ``A_t`` the computation uses and the start covariance are diagonal in one orthonormal basis
``V`` (the co-diagonalizable, commuting case — every composition of covariances that share an eigenbasis, such as
the paper's diagonal ones), the moments decouple into ``d`` scalar recursions, one per eigen-direction, and ``P``
stays diagonal in ``V``. The basis is found from a generic combination of the start covariance and ``A_t`` at a few
times; the diagonal form is then *verified* at every time the computation evaluates the field, and the general
matrix recursion is used whenever that verification fails, so the fast path never changes the answer beyond
rounding (``method="general"`` forces the matrix recursion).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

from closed_form.errors import CatcompError, InvalidTimeError, NonFiniteInputError, ShapeMismatchError
from closed_form.gaussian import Gaussian
from closed_form.schedules import reverse_time_grid

#: Relative size of off-diagonal entries (in the common basis) below which a matrix counts as diagonal there.
DIAGONAL_TOL = 1e-12
#: Default relative tolerance of the moment-ODE integration.
DEFAULT_RTOL = 1e-11
_METHODS = ("auto", "diagonal", "general")
#: Largest number of floats the batched field evaluation holds at once (~64 MB).
_CHUNK_FLOATS = 8_000_000


class NotCodiagonalizableError(CatcompError):
    """``method="diagonal"`` was requested but the field and start covariance share no eigenbasis."""


# ---------------------------------------------------------------------------------------------------------- fields
def add_fields(*fields):
    r"""The field of a sum of affine scores: ``t ↦ (Σ_j A^j_t, Σ_j b^j_t)``, i.e. ``ŝ = Σ_j (−A^j_t x + b^j_t)``.

    Use it to add an affine score error ``δ(x, t) = −E_t x + c_t`` (given as the field ``t ↦ (E_t, c_t)``) to a naive
    or exact field.
    """
    if not fields:
        raise CatcompError("add_fields needs at least one field.")

    def field(t):
        parts = [f(t) for f in fields]
        return sum(p[0] for p in parts), sum(p[1] for p in parts)

    return field


def _check_field_output(a, b, dim):
    if a.shape[-2:] != (dim, dim) or b.shape[-1:] != (dim,):
        raise ShapeMismatchError(
            f"the field returned A of shape {a.shape} and b of shape {b.shape}; expected ({dim}, {dim}) and ({dim},) "
            "to match the start distribution."
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise NonFiniteInputError("the field returned non-finite A_t or b_t; an affine score must be finite.")


def _field_on_times(field, times, dim, project=None):
    """Evaluate ``field`` at every time in ``times`` (NumPy arrays out), optionally mapped by ``project``.

    Traceable fields are evaluated by one jitted ``vmap`` per chunk; fields that cannot be traced (NumPy code) are
    called once per time.
    """
    project = project or (lambda a, b: (a, b))
    times = np.asarray(times, dtype=np.float64)
    chunk = max(1, _CHUNK_FLOATS // (dim * dim + dim))
    try:
        batched = jax.jit(jax.vmap(lambda t: project(*field(t))))
        outs = [batched(jnp.asarray(times[i : i + chunk])) for i in range(0, times.shape[0], chunk)]
        outs = [tuple(np.asarray(o) for o in out) for out in outs]
        return tuple(np.concatenate(parts) for parts in zip(*outs))
    except (TypeError, jax.errors.ConcretizationTypeError):  # a field written in NumPy: not traceable
        rows = [tuple(np.asarray(o) for o in project(*field(float(t)))) for t in times]
        return tuple(np.stack(parts) for parts in zip(*rows))


def _pointwise_field(field, project=None):
    """``t ↦ project(field(t))`` as NumPy arrays, jitted when the field is traceable."""
    project = project or (lambda a, b: (a, b))

    def plain(t):
        return tuple(np.asarray(o) for o in project(*field(t)))

    jitted = jax.jit(lambda t: project(*field(t)))

    def call(t):
        nonlocal jitted
        if jitted is not None:
            try:
                return tuple(np.asarray(o) for o in jitted(jnp.float64(t)))
            except (TypeError, jax.errors.ConcretizationTypeError):
                jitted = None
        return plain(float(t))

    return call


# ---------------------------------------------------------------------------------------------------------- basis
def _offdiag_ratio(m):
    """``max |offdiag(m)| / max(|m|, tiny)`` for a stack of square matrices (last two axes)."""
    m = np.asarray(m)
    d = m.shape[-1]
    off = m * (1.0 - np.eye(d))
    scale = np.maximum(np.max(np.abs(m), axis=(-2, -1)), np.finfo(np.float64).tiny)
    return np.max(np.abs(off), axis=(-2, -1)) / scale


def _common_eigenbasis(mats):
    """An orthonormal ``V`` with ``Vᵀ M V`` diagonal (to :data:`DIAGONAL_TOL`) for every ``M`` in ``mats``, or ``None``.

    Returns the identity when every matrix is already diagonal. Otherwise ``V`` diagonalizes a generic combination
    ``Σ_j c_j M_j/‖M_j‖`` with fixed, rationally independent coefficients ``c_j = √(j+2)`` — for commuting symmetric
    matrices its eigenvectors are common eigenvectors unless an eigenvalue coincidence makes the combination
    degenerate where the matrices are not, which the final check catches.
    """
    mats = np.asarray(mats)
    sym = 0.5 * (mats + np.swapaxes(mats, -1, -2))
    if np.max(_offdiag_ratio(sym)) <= DIAGONAL_TOL:
        return np.eye(mats.shape[-1])
    norms = np.maximum(np.max(np.abs(sym), axis=(-2, -1)), np.finfo(np.float64).tiny)
    coeffs = np.sqrt(np.arange(2, mats.shape[0] + 2, dtype=np.float64))
    combo = np.einsum("j,jkl->kl", coeffs / norms, sym)
    _, v = np.linalg.eigh(combo)
    if np.max(_offdiag_ratio(v.T @ mats @ v)) <= DIAGONAL_TOL:
        return v
    return None


def _probe_times(t_lo, t_hi, n=9):
    """Chebyshev points of ``[t_lo, t_hi]`` including both ends (probe times for the basis search)."""
    k = np.arange(n)
    return 0.5 * (t_lo + t_hi) + 0.5 * (t_hi - t_lo) * np.cos(np.pi * k / (n - 1))


def _choose_basis(field, start, times, method):
    """The common eigenbasis for the fast path, ``None`` for the general path."""
    if method not in _METHODS:
        raise CatcompError(f"method must be one of {_METHODS}, got {method!r}.")
    if method == "general":
        return None
    a_probe, _ = _field_on_times(field, times, start.dim)
    _check_field_output(a_probe, np.zeros(start.dim), start.dim)
    v = _common_eigenbasis(np.concatenate([np.asarray(start.cov)[None], a_probe]))
    if v is None and method == "diagonal":
        raise NotCodiagonalizableError(
            "method='diagonal' needs A_t (at the probed times) and the start covariance to be diagonal in one "
            "orthonormal basis; they are not. Use method='auto' or 'general'."
        )
    return v


def _projector(v):
    """Map ``(A, b)`` to ``(diag(VᵀAV), Vᵀb, offdiag ratio of VᵀAV)`` inside JAX (traceable)."""
    vj = jnp.asarray(v)
    identity = bool(np.array_equal(v, np.eye(v.shape[0])))

    def project(a, b):
        a = jnp.asarray(a, dtype=jnp.float64)
        b = jnp.asarray(b, dtype=jnp.float64)
        av = a if identity else vj.T @ a @ vj
        bv = b if identity else vj.T @ b
        diag = jnp.diagonal(av, axis1=-2, axis2=-1)
        off = jnp.max(jnp.abs(av - jnp.diag(diag)))
        ratio = off / jnp.maximum(jnp.max(jnp.abs(av)), jnp.finfo(jnp.float64).tiny)
        return diag, bv, ratio

    return project


def _gaussian_from_basis(v, mean_v, var_v):
    mean = v @ mean_v
    cov = (v * var_v) @ v.T
    return Gaussian(mean, 0.5 * (cov + cov.T))


def _check_inputs(schedule, start, t_min, t_max):
    if not isinstance(start, Gaussian):
        raise CatcompError(
            f"start must be a Gaussian (e.g. Gaussian.standard(d), π_T or the exact Q_T), got {type(start).__name__}."
        )
    t_max = schedule.T if t_max is None else float(t_max)
    if not (math.isfinite(t_min) and math.isfinite(t_max) and 0.0 <= t_min < t_max <= schedule.T):
        raise InvalidTimeError(
            f"need 0 ≤ t_min < t_max ≤ T = {schedule.T}; got t_min={t_min}, t_max={t_max}."
        )
    return float(t_min), t_max


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
        ``"auto"`` uses the per-eigen-direction recursion when it is verified valid at every grid time.

    Returns
    -------
    Gaussian
        The exact law of ``x`` after the last step (at time ``grid[-1]``).
    """
    if not isinstance(start, Gaussian):
        raise CatcompError(f"start must be a Gaussian, got {type(start).__name__}.")
    grid = reverse_time_grid(schedule, n_steps, eps)
    times, h = grid[:-1], grid[:-1] - grid[1:]
    beta = np.asarray(schedule.beta(times), dtype=np.float64)
    d = start.dim
    v = _choose_basis(field, start, times[np.unique(np.linspace(0, len(times) - 1, 9).astype(int))], method)
    if v is not None:
        a_diag, b_v, ratio = _field_on_times(field, times, d, _projector(v))
        if np.max(ratio) <= DIAGONAL_TOL:
            _check_field_output(np.zeros((d, d)), b_v, d)
            m = v.T @ np.asarray(start.mean)
            p = np.diagonal(v.T @ np.asarray(start.cov) @ v).copy()
            for k in range(len(times)):
                mk = 1.0 + h[k] * beta[k] * (0.5 - a_diag[k])
                m = mk * m + h[k] * beta[k] * b_v[k]
                p = mk * mk * p + beta[k] * h[k]
            return _gaussian_from_basis(v, m, p)
        if method == "diagonal":
            raise NotCodiagonalizableError(
                f"A_t is not diagonal in the common basis at every grid time (off-diagonal ratio {np.max(ratio):.3g}); "
                "use method='auto' or 'general'."
            )
    a_all, b_all = _field_on_times(field, times, d)
    _check_field_output(a_all, b_all, d)
    eye = np.eye(d)
    m = np.asarray(start.mean, dtype=np.float64)
    p = np.asarray(start.cov, dtype=np.float64)
    for k in range(len(times)):
        mk = eye + h[k] * beta[k] * (0.5 * eye - a_all[k])
        m = mk @ m + h[k] * beta[k] * b_all[k]
        p = mk @ p @ mk.T + beta[k] * h[k] * eye
        p = 0.5 * (p + p.T)
    return Gaussian(m, p)
