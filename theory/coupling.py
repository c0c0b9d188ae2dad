r"""A Wasserstein-2 bound for the reverse-SDE sampler by synchronous coupling, for Gaussian targets
and affine scores, where every hypothesis can be checked.

**Hypotheses.** (H1) The target ``Q₀ = N(μ, Σ)`` is Gaussian, so ``Q_t = N(α_tμ, α_t²Σ + σ_t²I)`` and the process
``X`` solving ``dX = [½βX + β∇log Q_t(X)]dτ + √β dW`` from ``X_{t_max} ∼ Q_{t_max}`` has marginals ``Q_t`` (its moment
ODEs are solved by ``Q_t``'s moments; ``tests/test_laws.py`` checks this). (H2) The sampler's score is affine,
``ŝ = −A_t x + b_t`` with ``A_t`` continuous on ``[t_min, t_max]``; its drift ``F(x) = ½βx + βŝ`` is then one-sided
Lipschitz, ``⟨F(x) − F(y), x − y⟩ ≤ L_t‖x − y‖²`` with the sharp constant
``L_t = β(t)·λ_max(½I − sym A_t)``. (H3) ``Y`` (the sampler) is driven by the *same* Brownian motion as ``X``, from
``Y_{t_max} ∼ start`` coupled optimally with ``X_{t_max}`` and independent of ``W``.

**Bound.** The noise is additive and identical, so ``Δ = X − Y`` has no martingale part and pathwise
``d‖Δ‖²/dτ = 2⟨Δ, F(X) − F(Y)⟩ − 2β⟨Δ, e(X)⟩ ≤ 2L‖Δ‖² + 2β‖Δ‖‖e(X)‖`` with ``e = ŝ − ∇log Q_t``. Grönwall on
``√(‖Δ‖² + ε)``, ``ε → 0``, then Minkowski's integral inequality in ``L²(Ω)`` give

.. math:: W_2\big(Q_{t_{min}}, \hat Q\big) \le y(t_{min}),\qquad
          -\frac{dy}{dt} = L_t\,y + β(t)\,\lVert e(\cdot, t)\rVert_{L^2(Q_t)},\quad y(t_{max}) = W_2(Q_{t_{max}}, \text{start}),

i.e. ``y = e^{∫L} W₂(Q_{t_max}, start) + ∫ e^{∫L} β ‖e‖_{L²(Q_t)}`` — linear in the error, measured under the target.
``‖e‖_{L²(Q_t)}`` is exact (trace formula); the scalar ODE is integrated by DOP853 at ``rtol = 1e-10``.
Like the Girsanov bound it concerns the continuous-time reverse SDE only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.integrate import solve_ivp

from closed_form import CatcompError, Gaussian, add_fields, w2
from closed_form.fields import as_numpy_field
from closed_form.schedules import scalar_coefficients
from theory.girsanov import affine_error_moment, check_interval, target_score_field


class CouplingW2Bound(NamedTuple):
    """``W₂(Q_{t_min}, reverse-SDE law at t_min) ≤ total``; ``start_term = W₂(Q_{t_max}, start)``,
    ``growth = exp(∫L)`` over ``[t_min, t_max]``, and ``total = growth·start_term + drift_term``."""

    total: float
    start_term: float
    drift_term: float
    growth: float
    t_min: float
    t_max: float


def synchronous_coupling_w2_bound(field, target: Gaussian, schedule, start: Gaussian, t_min: float = 1e-4, *,
                                  estimation_error=None, t_max=None, rtol: float = 1e-10) -> CouplingW2Bound:
    r"""The synchronous-coupling bound on ``W₂(Q_{t_min}, \hat Q)`` (module doc), for the score
    ``ŝ = field + estimation_error`` (both affine fields ``t ↦ (A_t, b_t)``)."""
    t_min, t_max = check_interval(schedule, t_min, t_max)
    if not isinstance(start, Gaussian) or start.dim != target.dim:
        raise CatcompError(f"start must be a Gaussian of dimension {target.dim} like the target.")
    score = field if estimation_error is None else add_fields(field, estimation_error)
    f = as_numpy_field(score)
    exact = target_score_field(target, schedule)
    half = 0.5 * np.eye(target.dim)

    def rates(t):
        a, b = f(t)
        a_q, b_q, m, p = exact(t)
        beta = scalar_coefficients(schedule, t)[2]
        lip = beta * float(np.linalg.eigvalsh(half - 0.5 * (a + a.T))[-1])
        err = np.sqrt(max(affine_error_moment(a - a_q, b - b_q, m, p), 0.0))
        return lip, beta * err

    def rhs(t, y):
        lip, drive = rates(t)
        # y = [bound, log growth, drift part]; forward time decreases, hence the minus signs.
        return -np.array([lip * y[0] + drive, lip, lip * y[2] + drive])

    start_term = float(w2(target.noised(schedule, t_max), start))
    sol = solve_ivp(rhs, (t_max, t_min), np.array([start_term, 0.0, 0.0]), method="DOP853", rtol=rtol,
                    atol=1e-14, max_step=(t_max - t_min) / 16.0)
    if sol.status != 0:
        raise RuntimeError(f"coupling-bound integration failed: {sol.message}")
    total, log_growth, drift = sol.y[:, -1]
    # y solves a linear ODE with non-negative forcing from a non-negative start, so it is ≥ 0; when both vanish (exact
    # score, exact start) the integrator can return −1e-15, which the clip removes.
    return CouplingW2Bound(max(float(total), 0.0), start_term, max(float(drift), 0.0), float(np.exp(log_growth)),
                           t_min, t_max)
