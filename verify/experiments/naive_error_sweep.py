r"""FKC's limit against the naive sampler, both with misspecified scores (exact, Gaussian settings).

:func:`naive_error_sweep` — at each training-side ``ε``, every source misspecified along the worst directions of
:func:`theory.amplification.amplification` calibrated to that ``ε`` exactly: the exact target of the misspecified
scores (FKC's continuous-time limit for such errors) against the naive sampler with them, so that the report says
plainly where FKC with errors is worse than naive with errors.

The top generalized eigenvalue can be degenerate (every paper Gaussian setting has a 2-D top eigenspace), and then
the "worst direction" is any member of that eigenspace: a single basis vector, as ``eigh`` happens to return it,
would make the comparison an arbitrary choice. Each row therefore gives the *range* over the eigenspace's unit
directions (both signs; :func:`theory.amplification.eigenspace_search`: a sweep of its unit circle refined at the
extremes) of ``KL(Q‖Q̂)``, of ``KL(Q‖naive with errors)`` and of their difference, and says whether FKC with errors is
worse for every direction, for some, or for none.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp

from closed_form import VPSchedule, as_setting
from closed_form.divergences import kl
from closed_form.errors import CatcompError
from closed_form.gaussian import Gaussian
from closed_form.laws import DEFAULT_RTOL, sde_law
from closed_form.schedules import diffused_covariance
from closed_form.settings import GAUSSIAN_SETTING_NAMES as GAUSSIAN_SETTINGS
from theory.amplification import (
    amplification,
    calibrate_many,
    pad_rows,
    eigenspace_search,
    perturbed_sources,
    target_kl_many,
)
from verify.report.figures import FigureSpec, lines
from verify.report.registry import Experiment, gaussian_only, grid
from verify.report.tables import Column, TableSpec


#: The stacked moment ODEs are integrated 64 directions at a time (padded), one compilation per composition shape:
#: measured 0.56 s per batch of 64 on NFC_OOD against 0.25 s per direction one at a time.
NAIVE_BATCH_ROWS = 64
#: The eigenspace search of the comparison: 64 angles, then 3 zooms of 9 angles around each of the 6 extremes
#: (54 directions, one padded batch of 64), locating each extreme to 360°/64/4³ ≈ 0.09°.
SEARCH = dict(n_angles=64, zooms=3, zoom_points=9)


@partial(jax.jit, static_argnames=("schedule",))
def _naive_rhs(t, y, deltas, means, covs, weights, schedule):
    """Forward-time derivative of the naive SDE's moments ``(m, P)`` for a batch of misspecifications ``δ`` (rows),
    each driven by ``Σ_i w_i ∇log p̂^i_t`` (``closed_form.laws`` module doc; ``τ = T − t``)."""
    d = means.shape[1]
    n = deltas.shape[0]
    alpha = schedule.alpha(t)
    beta = schedule.beta(t)
    eye = jnp.eye(d)

    def one(delta, yj):
        sources = perturbed_sources([Gaussian._unchecked(m, c) for m, c in zip(means, covs)], delta)
        a = jnp.zeros((d, d))
        b = jnp.zeros(d)
        for w, g in zip(weights, sources):
            prec = jnp.linalg.inv(diffused_covariance(schedule, g.cov, t))
            a = a + w * prec
            b = b + w * prec @ (alpha * g.mean)
        m, p = yj[:d], yj[d:].reshape(d, d)
        k = 0.5 * eye - a
        dm = k @ m + b
        dp = k @ p + p @ k.T + eye
        return -beta * jnp.concatenate([dm, dp.ravel()])

    return jax.vmap(one)(deltas, y.reshape(n, -1)).ravel()


def naive_laws_many(composition, schedule, deltas, t_min: float, rtol: float = DEFAULT_RTOL):
    r"""The continuous-time naive SDE's law at ``t_min`` (start ``Q_T``) driven by the naive field of the sources
    misspecified by each row of ``deltas``, all in one DOP853 integration of the stacked moment ODEs (same
    tolerances as :func:`closed_form.sde_law`). Equal, to the integration's accuracy, to
    :func:`verify.analysis.error_models.naive_with_errors_law` of each row's sources (which integrates each field on
    its own, in the sources' eigenbases); returns ``(means, covs)`` of shapes ``(n, d)`` and ``(n, d, d)``."""
    deltas, n_rows = pad_rows(np.atleast_2d(np.asarray(deltas, dtype=np.float64)), NAIVE_BATCH_ROWS)
    n, d = len(deltas), composition.dim
    start = composition.noised_target(schedule, schedule.T)
    m0, p0 = np.asarray(start.mean), np.asarray(start.cov)
    y0 = np.tile(np.concatenate([m0, p0.ravel()]), n)
    atol = 1e-2 * rtol * max(1.0, float(np.max(np.abs(m0))), float(np.max(np.abs(p0))))
    means = jnp.stack([s.mean for s in composition.sources])
    covs = jnp.stack([s.cov for s in composition.sources])
    weights = tuple(float(w) for w in composition.weights)
    args = (jnp.asarray(deltas), means, covs, weights, schedule)

    def rhs(t, y):
        return np.asarray(_naive_rhs(t, jnp.asarray(y), *args))

    sol = solve_ivp(rhs, (schedule.T, t_min), y0, method="DOP853", rtol=rtol, atol=atol,
                    max_step=(schedule.T - t_min) / 16.0)
    if sol.status != 0:
        raise RuntimeError(f"moment-ODE integration failed at rtol={rtol}: {sol.message}")
    y = sol.y[:, -1].reshape(n, -1)
    p = y[:, d:].reshape(n, d, d)
    return y[:n_rows, :d], 0.5 * (p + np.swapaxes(p, 1, 2))[:n_rows]


def _kl_many(q, means, covs):
    """``KL(q‖N(m_j, P_j)) = ½[tr(P_j⁻¹Σ) − d + log|P_j| − log|Σ| + (m_j − μ)ᵀP_j⁻¹(m_j − μ)]`` per row (batched
    closed form; :func:`closed_form.kl` one at a time gives the same to round-off)."""
    mu, sigma = np.asarray(q.mean), np.asarray(q.cov)
    d = len(mu)
    diff = means - mu
    trace = np.trace(np.linalg.solve(covs, np.broadcast_to(sigma, covs.shape)), axis1=1, axis2=2)
    quad = np.einsum("ni,ni->n", diff, np.linalg.solve(covs, diff[..., None])[..., 0])
    logdet = np.linalg.slogdet(covs)[1] - np.linalg.slogdet(sigma)[1]
    return 0.5 * (trace - d + logdet + quad)


def _comparison(composition, schedule, eps, t_min):
    """``evaluate`` for :func:`theory.amplification.eigenspace_search`: per direction, KL(Q_{t_min}‖·) of FKC's
    limit (``Q̂``; ``inf`` when improper) and of the naive SDE with the misspecified scores, and their difference."""
    q_min = composition.noised_target(schedule, t_min)

    def evaluate(directions):
        deltas, valid = calibrate_many(composition, schedule, eps, directions)
        fkc = np.full(len(deltas), np.nan)
        naive = np.full(len(deltas), np.nan)
        if valid.any():
            good = deltas[valid]
            fkc[valid] = target_kl_many(composition, schedule, good, t_min)
            naive[valid] = _kl_many(q_min, *naive_laws_many(composition, schedule, good, t_min))
        return {"kl_fkc_errors": fkc, "kl_naive_errors": naive, "fkc_minus_naive": fkc - naive}

    return evaluate


def _verdict(low: float, high: float) -> str:
    if low > 0:
        return "every direction"
    if high < 0:
        return "no direction"
    if low == 0 or high == 0:
        return "ties"
    return "some directions"


def naive_error_sweep(setting, eps=(0.001, 0.002, 0.005, 0.01), t_min: float = 1e-4) -> pd.DataFrame:
    r"""One row per training-side ``ε``: over the unit directions of the top eigenspace of
    :func:`theory.amplification.amplification` (both signs; the eigenspace's whole unit circle where ``λ_max`` is
    double), each calibrated to ``ε`` exactly, the range (min, max) of ``KL(Q_{t_min}‖Q̂_{t_min})`` (FKC's continuous
    limit with the misspecified scores; ``inf`` when ``Q̂`` is improper), of ``KL(Q_{t_min}‖·)`` of the naive SDE with
    them, and of the difference FKC − naive; ``fkc_worse`` says for which directions FKC with errors is worse
    (``"every direction"``, ``"some directions"``, ``"no direction"``). Beside them the naive SDE with exact scores
    (inference-time error). ``n_valid`` counts the directions that reach ``ε`` with positive-definite covariances
    (the others are left out of the range); a row with none has ``valid = False`` and NaN ranges.

    Raises
    ------
    NotGaussianSettingError
        For a setting with a mixture source.
    """
    schedule = VPSchedule()
    setting = as_setting(setting)
    setting.require_gaussian("naive_error_sweep (exact laws of misspecified Gaussian sources)")
    comp = setting.composition
    amp = amplification(comp, schedule)
    q_min = comp.noised_target(schedule, t_min)
    naive = sde_law(comp.naive_field(schedule), schedule, comp.noised_target(schedule, schedule.T), t_min)
    kl_inference = float(kl(q_min, naive))
    rows = []
    for e in eps:
        row = {"setting": setting.name, "eps": float(e), "multiplicity": amp.multiplicity,
               "kl_inference": kl_inference}
        try:
            res = eigenspace_search(amp, _comparison(comp, schedule, float(e), t_min), **SEARCH)
        except CatcompError:  # every direction leaves the positive-definite cone before ε
            nan = float("nan")
            rows.append({**row, "coverage": "", "n_directions": 0, "n_valid": 0, "valid": False,
                         **{f"{k}_{x}": nan for k in ("kl_fkc_errors", "kl_naive_errors", "fkc_minus_naive")
                            for x in ("min", "max")}, "fkc_worse": "invalid"})
            continue
        row.update(coverage=res.coverage, n_directions=res.n_directions, n_valid=res.n_valid, valid=True)
        for key in ("kl_fkc_errors", "kl_naive_errors", "fkc_minus_naive"):
            row[f"{key}_min"], row[f"{key}_max"] = res.minimum[key], res.maximum[key]
        row["fkc_worse"] = _verdict(res.minimum["fkc_minus_naive"], res.maximum["fkc_minus_naive"])
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- registration
_CURVES = {"kl_fkc_errors": "FKC limit, errors", "kl_naive_errors": "naive, errors"}


def _sweep_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Long form for the figure: the eigenspace range of FKC's limit and of naive with errors (min and max), and
    naive with exact scores."""
    valid = frame[frame["valid"].astype(bool)]
    parts = [valid.assign(curve="naive, exact scores", KL=valid["kl_inference"])]
    for key, label in _CURVES.items():
        for x in ("min", "max"):
            parts.append(valid.assign(curve=f"{label} ({x} over eigenspace)", KL=valid[f"{key}_{x}"]))
    return pd.concat(parts, ignore_index=True)[["setting", "eps", "curve", "KL"]]


EXPERIMENT = Experiment(
    name="naive_error_sweep",
    title="FKC's limit vs the naive sampler, both with misspecified scores, over the worst eigenspace (exact)",
    compute=naive_error_sweep,
    seed_argument=None,
    applies_to=gaussian_only,
    default=grid(setting=GAUSSIAN_SETTINGS, eps=([0.002, 0.005, 0.01],)),
    quick=grid(setting=("NFC_OOD",), eps=([0.005],)),
    allow_nan=tuple(f"{k}_{x}" for k in ("kl_fkc_errors", "kl_naive_errors", "fkc_minus_naive")
                    for x in ("min", "max")),
    tables=(TableSpec(
        name="naive_error_sweep",
        caption="Misspecified sources along the worst directions at training-side ε (DSM excess): over the unit "
                "directions of the top eigenspace of the amplification (mult. = its dimension; both signs, the "
                "whole unit circle where it is 2-D), the range min–max of KL(Q‖·) at t_min of FKC's continuous-time "
                "limit (the exact composition of the misspecified sources; ∞ when improper) and of the naive SDE "
                "with the same scores, beside the naive SDE with exact scores; 'FKC worse' says for which "
                "directions FKC with errors is worse than naive with errors",
        index=("setting", "eps"), index_header="setting / ε",
        columns=(
            Column("multiplicity", "mult.", kind="integer"),
            Column("kl_inference", "naive, exact scores"),
            Column("kl_fkc_errors_min", "FKC limit min", missing="invalid"),
            Column("kl_fkc_errors_max", "FKC limit max", missing="invalid"),
            Column("kl_naive_errors_min", "naive min", missing="invalid"),
            Column("kl_naive_errors_max", "naive max", missing="invalid"),
            Column("fkc_worse", "FKC worse for", kind="text"),
        ),
    ),),
    figures=(FigureSpec(
        "naive_error_sweep",
        "KL(Q‖·) against training-side ε over the worst eigenspace (min and max over its unit directions): FKC's "
        "limit with the misspecified scores and naive composition with them, beside naive with exact scores "
        "(drawn at the floor 1e-6 where naive composition is exact).",
        lambda frame: lines(_sweep_curves(frame), x="eps", y="KL", hue="curve", col="setting", logx=True, logy=True,
                            floor=1e-6, ylabel="KL(Q‖·)"),
    ),),
)
