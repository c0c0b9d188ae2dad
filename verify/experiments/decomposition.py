r"""Exact error decomposition of composed samplers for Gaussian compositions, and the paper's Gaussian table.

Every number here comes from exact Gaussian laws (:mod:`closed_form.laws`) and exact divergences
(:mod:`closed_form.divergences`): no Monte Carlo. The *ideal* sampler is the continuous-time reverse SDE driven by
the exact score ``∇log Q_t``, started at the exact ``Q_T`` and stopped at ``t_min``; its law is ``Q_{t_min}``. Each
error source is switched on alone, on top of the ideal sampler:

============== ================================================ ======================== ===============
component      sampler                                          score field              start
============== ================================================ ======================== ===============
early_stopping continuous SDE, stopped at ``t_min``             exact ``∇log Q_t``       ``Q_T``
start          continuous SDE                                   exact                    ``start``
discretization Euler–Maruyama, ``n_steps`` on the paper's grid  exact                    ``Q_{grid[0]}``
inference      continuous SDE                                   naive ``Σ w_i ∇log q^i_t`` ``Q_T``
estimation     continuous SDE                                   exact + ``δ``            ``Q_T``
full_sampler   Euler–Maruyama, ``n_steps``                      naive + ``δ``            ``start``
============== ================================================ ======================== ===============

For each law ``\hat Q`` the table reports ``KL(Q₀‖\hat Q)`` and ``W₂(Q₀, \hat Q)`` against the target ``Q₀`` and, to
separate the early-stopping bias, ``KL(Q_s‖\hat Q)`` and ``W₂(Q_s, \hat Q)`` against the target diffused to the time
``s`` where the sampler stops (``t_min`` for the continuous sampler, ``grid[−1] = eps`` for Euler–Maruyama).
The KL direction is ``KL(target‖sampler)``, as in the paper's reference values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from closed_form import (
    Gaussian,
    VPSchedule,
    add_fields,
    euler_maruyama_law,
    kl,
    ode_law,
    paper_setting,
    ress_inverse,
    reverse_time_grid,
    sde_law,
    w2,
)
from closed_form.errors import CatcompError
from closed_form.settings import GAUSSIAN_SETTING_NAMES as GAUSSIAN_SETTINGS
from theory import girsanov_kl_bound, synchronous_coupling_w2_bound

START_NAMES = ("exact", "standard", "path")


def _start_gaussian(composition, schedule, start, t: float) -> Gaussian:
    """The start law at time ``t``: ``"exact"`` → ``Q_t``, ``"standard"`` → ``N(0, I)`` (the paper's),
    ``"path"`` → ``π_t`` (the geometric path of the diffused sources), or a given :class:`Gaussian`."""
    if isinstance(start, Gaussian):
        return start
    if start == "exact":
        return composition.noised_target(schedule, t)
    if start == "standard":
        return Gaussian.standard(composition.dim)
    if start == "path":
        return composition.path_composition(schedule, t).target
    raise CatcompError(f"unknown start {start!r}; valid: {', '.join(START_NAMES)} or a Gaussian.")


def _row(target, schedule, law, t_stop, **labels):
    stopped = target.noised(schedule, t_stop)
    return {
        **labels,
        "t_stop": t_stop,
        "kl_to_target": float(kl(target, law)),
        "w2_to_target": float(w2(target, law)),
        "kl_to_stopped": float(kl(stopped, law)),
        "w2_to_stopped": float(w2(stopped, law)),
    }


def error_decomposition(composition, schedule=None, *, estimation_error=None, start="standard", n_steps: int = 500,
                        t_min: float = 1e-4, eps: float = 1e-5) -> pd.DataFrame:
    r"""Exact KL and W2 to ``Q₀`` of each error source switched on alone (module doc), for a Gaussian composition.

    Parameters
    ----------
    composition : Composition
        Gaussian sources (the naive score is then affine).
    schedule : VPSchedule, optional
        Default: the paper's ``VPSchedule()``.
    estimation_error : callable ``t ↦ (E_t, c_t)``, optional
        Affine score error ``δ = −E_t x + c_t`` added to the composed score. Without it the ``estimation`` row is
        omitted and ``full_sampler`` uses exact source scores.
    start : {"standard", "exact", "path"} or Gaussian
        Start of the ``start`` and ``full_sampler`` rows (default the paper's ``N(0, I)``).
    n_steps, eps : int, float
        The Euler–Maruyama grid (:func:`closed_form.reverse_time_grid`).
    t_min : float
        Stopping time of the continuous sampler.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``component``; columns ``sampler``, ``field``, ``start``, ``t_stop``, ``kl_to_target``,
        ``w2_to_target``, ``kl_to_stopped``, ``w2_to_stopped``. The laws themselves are in ``df.attrs["laws"]``.
    """
    schedule = VPSchedule() if schedule is None else schedule
    target = composition.target
    exact, naive = composition.target_field(schedule), composition.naive_field(schedule)
    grid = reverse_time_grid(schedule, n_steps, eps)
    q_start = composition.noised_target(schedule, schedule.T)
    user_start_T = _start_gaussian(composition, schedule, start, schedule.T)
    user_start_grid = _start_gaussian(composition, schedule, start, float(grid[0]))
    start_name = start if isinstance(start, str) else "given"
    sampler_field = naive if estimation_error is None else add_fields(naive, estimation_error)

    specs = [
        ("early_stopping", "sde", exact, "exact", "exact", q_start),
        ("start", "sde", exact, "exact", start_name, user_start_T),
        ("discretization", "euler_maruyama", exact, "exact", "exact", composition.noised_target(schedule, float(grid[0]))),
        ("inference", "sde", naive, "naive", "exact", q_start),
    ]
    if estimation_error is not None:
        specs.append(("estimation", "sde", add_fields(exact, estimation_error), "exact+error", "exact", q_start))
    specs.append(("full_sampler", "euler_maruyama", sampler_field,
                  "naive" if estimation_error is None else "naive+error", start_name, user_start_grid))

    rows, laws = [], {}
    for component, sampler, field, field_name, s_name, s_law in specs:
        if sampler == "sde":
            law, t_stop = sde_law(field, schedule, s_law, t_min=t_min), t_min
        else:
            law, t_stop = euler_maruyama_law(field, schedule, s_law, n_steps=n_steps, eps=eps), float(grid[-1])
        laws[component] = law
        rows.append(_row(target, schedule, law, t_stop, component=component, sampler=sampler, field=field_name,
                         start=s_name))
    df = pd.DataFrame(rows).set_index("component")
    df.attrs["laws"] = laws
    df.attrs["kl_direction"] = "KL(target || sampler law)"
    return df


def paper_gaussian_table(schedule=None, *, start="exact", n_steps: int = 500, t_min: float = 1e-4,
                         eps: float = 1e-5) -> pd.DataFrame:
    r"""The paper's 2×2 Gaussian design (FC/NFC × ID/OOD), naive composition with exact scores, all exact.

    One row per setting (``FC_ID``, ``NFC_ID``, ``FC_OOD``, ``NFC_OOD``). Samplers: the continuous reverse SDE and the
    probability-flow ODE from ``T`` to ``t_min``, and Euler–Maruyama with ``n_steps`` on the paper's grid (clamped to
    ``[eps, T − eps]``); all started from ``start`` at their first time (default ``"exact"``: ``Q_T`` — the setup
    of the reference values for the paper's settings; ``"standard"``: the paper's ``N(0, I)``).

    Columns
    -------
    factorized, in_distribution : bool
    target_cov, sde_cov, ode_cov, em_cov : ndarray (d, d)
        Covariances of ``Q₀`` and of the three output laws (all means are zero here).
    target_var, sde_var, ode_var, em_var : float
        ``tr(cov)/d`` — the variance of each isotropic law (every one in this design is isotropic).
    sde_kl, ode_kl, em_kl, sde_w2, ode_w2, em_w2 : float
        ``KL(Q₀‖out)`` and ``W₂(Q₀, out)``.
    girsanov_total, girsanov_start, girsanov_inference, girsanov_estimation : float
        :func:`theory.girsanov_kl_bound` for the SDE sampler (estimation term zero: exact source scores), which
        bounds ``sde_kl_at_t_min = KL(Q_{t_min}‖SDE law)``.
    coupling_w2_bound, sde_w2_at_t_min : float
        :func:`theory.synchronous_coupling_w2_bound` and the ``W₂(Q_{t_min}, SDE law)`` it bounds.
    one_plus_chi2_a1, one_plus_chi2_a2, one_plus_chi2_base : float
        ``1 + χ²(Q₀‖P_i) = rESS_i⁻¹`` (``inf`` when ``2Σ_i − Σ_Q`` is not positive definite).
    """
    schedule = VPSchedule() if schedule is None else schedule
    grid = reverse_time_grid(schedule, n_steps, eps)
    rows = []
    for name in GAUSSIAN_SETTINGS:
        setting = paper_setting(name)
        comp = setting.composition
        target = comp.target
        naive = comp.naive_field(schedule)
        s_T = _start_gaussian(comp, schedule, start, schedule.T)
        outs = {
            "sde": sde_law(naive, schedule, s_T, t_min=t_min),
            "ode": ode_law(naive, schedule, s_T, t_min=t_min),
            "em": euler_maruyama_law(naive, schedule, _start_gaussian(comp, schedule, start, float(grid[0])),
                                     n_steps=n_steps, eps=eps),
        }
        row = {"setting": name, "factorized": setting.factorized, "in_distribution": setting.in_distribution,
               "target_cov": np.asarray(target.cov), "target_var": float(np.trace(target.cov)) / comp.dim}
        for key, law in outs.items():
            row[f"{key}_cov"] = np.asarray(law.cov)
            row[f"{key}_var"] = float(np.trace(law.cov)) / comp.dim
            row[f"{key}_kl"] = float(kl(target, law))
            row[f"{key}_w2"] = float(w2(target, law))
        bound = girsanov_kl_bound(naive, target, schedule, s_T, t_min=t_min)
        stopped = target.noised(schedule, t_min)
        row.update(
            girsanov_total=bound.total,
            girsanov_start=bound.start_term,
            girsanov_inference=bound.inference_term,
            girsanov_estimation=bound.estimation_term,
            sde_kl_at_t_min=float(kl(stopped, outs["sde"])),
            coupling_w2_bound=synchronous_coupling_w2_bound(naive, target, schedule, s_T, t_min=t_min).total,
            sde_w2_at_t_min=float(w2(stopped, outs["sde"])),
        )
        for label, source in zip(("a1", "a2", "base"), setting.sources):
            row[f"one_plus_chi2_{label}"] = ress_inverse(target, source)
        rows.append(row)
    df = pd.DataFrame(rows).set_index("setting")
    df.attrs.update(start=start if isinstance(start, str) else "given", n_steps=n_steps, t_min=t_min, eps=eps,
                    kl_direction="KL(target || sampler law)")
    return df
