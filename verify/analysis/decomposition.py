r"""Exact error decomposition of composed samplers for Gaussian compositions.

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

import pandas as pd

from closed_form import (
    Gaussian,
    VPSchedule,
    add_fields,
    euler_maruyama_law,
    kl,
    reverse_time_grid,
    sde_law,
    w2,
)
from closed_form.errors import CatcompError

START_NAMES = ("exact", "standard", "path")


def start_gaussian(composition, schedule, start, t: float) -> Gaussian:
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
    user_start_T = start_gaussian(composition, schedule, start, schedule.T)
    user_start_grid = start_gaussian(composition, schedule, start, float(grid[0]))
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
