r"""Exact output laws of reverse-time samplers driven by an affine score *field*.

A *field* (:mod:`closed_form.fields`) is a callable ``t ↦ (A_t, b_t)`` meaning the score used at diffusion time
``t`` is ``ŝ(x, t) = −A_t x + b_t``: what naive composition of Gaussian sources gives
(:meth:`Composition.naive_field`), what the exact diffused target gives (:meth:`Composition.target_field`), and what
affine score errors add to either (:func:`~closed_form.fields.add_fields`).

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

* a :class:`~closed_form.fields.CodiagonalField` (built by :func:`~closed_form.fields.codiagonal_field`) *declares* its basis and gives
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

import numpy as np
from scipy.integrate import solve_ivp

from closed_form.errors import CatcompError, InvalidTimeError, NotCodiagonalizableError, ShapeMismatchError
from closed_form.fields import (
    DIAGONAL_TOL,
    CodiagonalField,
    FieldSum,
    _check_field_output,
    _common_eigenbasis,
    _framed_codiagonal_sum,
    _offdiag_ratio,
    as_numpy_field,
)
from closed_form.gaussian import Gaussian
from closed_form.schedules import reverse_time_grid, scalar_coefficients
#: Default relative tolerance of the moment-ODE integration.
DEFAULT_RTOL = 1e-11
_METHODS = ("auto", "diagonal", "general")


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
        _check_start_dimension(field, self.full, start, probe_times[0])
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


def _field_dimension(field, full, t) -> int:
    """The dimension the affine field acts in: its basis's for a :class:`CodiagonalField` (or a sum of them),
    otherwise that of ``A_t`` at one time ``t``."""
    parts = field.parts if isinstance(field, FieldSum) else (field,)
    if all(isinstance(f, CodiagonalField) for f in parts):
        return int(np.shape(parts[0].basis)[0])
    a, _ = full(t)
    shape = np.shape(a)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ShapeMismatchError(f"the field returned A_t of shape {shape}; an affine score needs a square d × d "
                                 "matrix A_t and a vector b_t of length d.")
    return int(shape[0])


def _check_start_dimension(field, full, start, t) -> None:
    """Raise :class:`ShapeMismatchError`, saying what would be valid, when the start's dimension is not the field's."""
    d = _field_dimension(field, full, t)
    if d != start.dim:
        raise ShapeMismatchError(
            f"the start distribution has dimension {start.dim} but the score field acts in dimension {d} (A_t is "
            f"{d} × {d}); pass a start Gaussian of dimension {d}, e.g. Gaussian.standard({d}) or "
            f"closed_form.start_law(composition, schedule, 'standard')."
        )


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

    def beta(t):
        # One compiled call, shared by every law on this schedule (jax.jit(schedule.beta) compiled once per law: a
        # bound method is a new function each time).
        return scalar_coefficients(schedule, t)[2]

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


__all__ = ["DEFAULT_RTOL", "euler_maruyama_law", "ode_law", "sde_law"]
