r"""Monte Carlo FKC against its exact ``K → ∞`` limit on the same grid: consistency, and the rate ``1/K``.

For affine source scores the law that :func:`verify.samplers.smc.fkc_sample` converges to as ``K → ∞``, and the log mass its
``log Ẑ`` estimates, are known exactly on the sampler's own grid (:func:`closed_form.fkc_limit_law` with
``n_steps``). Per Gaussian paper setting, with exact scores, with the worst-case time-inconsistent precision
error (:func:`closed_form.perturbations.precision_error` at training-side ``ε``, sign ``sign(w_i)``) and with the
report's default error model, worst-case source misspecification at DSM size ``dsm_eps``
(:func:`misspecified_scores`: the exact scores of the misspecified sources), this runs
``n_swarms`` independent swarms of ``K`` particles for several ``K`` and compares, per statistic, the mean over
swarms of each swarm's weighted-cloud estimate with the exact value:

* statistics: the means ``E x_j``, the second moments ``E x_jx_k``, ``E‖x‖²`` and ``log Ẑ``;
* standard errors from the spread over the independent swarms (``std/√n_swarms``).

What is guaranteed and what is found. A swarm's weighted-cloud average ``Σ_j W_j φ(x_j)`` has expectation
``μ(φ) + c/K + O(K⁻²)`` (the particle approximation's bias expansion), so the values over ``K`` extrapolate to the
exact limit: :func:`extrapolate` fits ``a + c/K`` by weighted least squares and the check asks ``a`` to equal the
exact value within 4 standard errors — a consistency guarantee, since a wrong limit law would fail it. The rate itself
(:func:`rate`: slope of ``log|gap|`` against ``log K``) is asymptotic and undefined where there is no bias (with
factorized conditionals and exact scores the weights are constant and FKC *is* the naive sampler), so it is a
finding, judged only where every gap is resolved (``|gap| ≥ 3 SE``).
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from closed_form import Gaussian, VPSchedule, fkc_limit_law, paper_setting
from verify.samplers.perturbed import AffineErrorScore
from verify.samplers.scores import source_scores
from verify.samplers.smc import fkc_sample

#: Floor of a standard error, relative to ``max(1, |exact|)``: float64 round-off accumulated over the steps (the
#: deterministic ``log Ẑ`` of constant weights misses its exact value by ~1e-15 after 50 steps).
ROUNDOFF = 1e-12
#: Statistics compared per ``K`` (2-D settings).
STATISTICS = ("mean_0", "mean_1", "second_00", "second_01", "second_11", "second_trace", "log_z")


def error_scores(composition, schedule, eps: float) -> tuple:
    """The sources' exact scores with the worst-case precision error of training-side size ``eps`` (sign
    ``sign(w_i)``; ``eps = 0``: exact), as :class:`verify.samplers.perturbed.AffineErrorScore` s, so that every setting and
    ``ε`` shares one compiled sampler per ``K``."""
    return tuple(AffineErrorScore.build(s, float(np.sign(w)) * eps)
                 for s, w in zip(source_scores(composition, schedule), composition.weights))


def _exact_values(limit) -> dict:
    m = np.asarray(limit.law.mean)
    second = np.asarray(limit.law.cov) + np.outer(m, m)
    return {"mean_0": m[0], "mean_1": m[1], "second_00": second[0, 0], "second_01": second[0, 1],
            "second_11": second[1, 1], "second_trace": np.trace(second), "log_z": limit.log_mass}


def _swarm_values(out) -> dict:
    """Per swarm: the weighted-cloud estimates of each statistic, shape ``(n_swarms,)`` each."""
    x = np.asarray(out.particles)
    w = np.exp(np.asarray(out.log_weights))
    mean = np.einsum("sk,ski->si", w, x)
    second = np.einsum("sk,ski,skj->sij", w, x, x)
    return {"mean_0": mean[:, 0], "mean_1": mean[:, 1], "second_00": second[:, 0, 0],
            "second_01": second[:, 0, 1], "second_11": second[:, 1, 1],
            "second_trace": second[:, 0, 0] + second[:, 1, 1], "log_z": np.asarray(out.log_normalizer)}


def misspecified_scores(composition, schedule, dsm_eps: float) -> tuple:
    """The exact scores of the sources misspecified along the worst direction at DSM size ``dsm_eps``
    (:func:`theory.amplification.worst_case_misspecification`), as :class:`verify.samplers.perturbed.AffineErrorScore` s with
    no further error, so that they share the compiled sampler with :func:`error_scores`."""
    from closed_form import compose
    from theory.amplification import worst_case_misspecification

    fitted, _ = worst_case_misspecification(composition, schedule, dsm_eps)
    return tuple(AffineErrorScore.build(s) for s in source_scores(compose(fitted, composition.weights), schedule))


def fkc_convergence(setting: str, eps: float = 0.1, ks=(4, 8, 16, 32), n_swarms: int = 2000, n_steps: int = 50,
                    seed: int = 0, dsm_eps: float = 0.005) -> pd.DataFrame:
    r"""Rows ``(setting, scores, eps, K, statistic)`` with the Monte Carlo value ``mc`` (mean over swarms of the
    weighted-cloud estimate), its standard error ``se``, the exact discrete limit ``exact``, ``gap = mc − exact``
    and ``z = gap/se``; ``scores`` is ``"exact"``, ``"precision"`` (time-inconsistent error of size ``eps``) or
    ``"misspecification"`` (worst-case misspecified sources at DSM size ``dsm_eps``).
    Start ``N(0, I)``, resampling every step, no clipping: the sampler whose limit ``fkc_limit_law`` gives."""
    schedule = VPSchedule()
    comp = paper_setting(setting).composition
    key = jax.random.key(seed)
    start = Gaussian.standard(comp.dim)
    rows = []
    models = (("exact", 0.0, error_scores(comp, schedule, 0.0)),
              ("precision", float(eps), error_scores(comp, schedule, float(eps))),
              ("misspecification", float(dsm_eps), misspecified_scores(comp, schedule, float(dsm_eps))))
    for j, (model, size, scores) in enumerate(models):
        limit = fkc_limit_law([s.field for s in scores], comp.weights, schedule, start, n_steps=n_steps)
        exact = _exact_values(limit)
        for k in ks:
            out = fkc_sample(jax.random.fold_in(jax.random.fold_in(key, j), int(k)), scores, comp.weights, schedule,
                             n_swarms, int(k), n_steps=n_steps)
            for name, values in _swarm_values(out).items():
                mc = float(np.mean(values))
                # Where a statistic is deterministic (log Ẑ when the weights are constant, as with factorized
                # conditionals and exact scores) its spread is zero; float64 round-off over the steps then sets the
                # scale of the gap, so the standard error is floored there.
                se = max(float(np.std(values, ddof=1) / np.sqrt(n_swarms)),
                         ROUNDOFF * max(1.0, abs(float(exact[name]))))
                gap = mc - float(exact[name])
                rows.append({"setting": setting, "scores": model, "eps": size, "K": int(k), "statistic": name,
                             "mc": mc, "se": se, "exact": float(exact[name]), "gap": gap, "abs_gap": abs(gap),
                             "z": gap / se if se > 0 else 0.0, "n_swarms": n_swarms, "n_steps": n_steps})
    return pd.DataFrame(rows)


def _wls(x, y, se):
    """Weighted least squares ``y ≈ X β`` with weights ``1/se²``: ``(β, cov β)``."""
    w = 1.0 / np.asarray(se) ** 2
    xtwx = x.T @ (w[:, None] * x)
    cov = np.linalg.inv(xtwx)
    return cov @ (x.T @ (w * y)), cov


def extrapolate(frame: pd.DataFrame) -> pd.DataFrame:
    r"""Per ``(setting, scores, statistic)``: the fit ``mc_K ≈ a + c/K`` (weighted by ``1/se_K²``), its intercept
    ``a`` with standard error, and ``z = (a − exact)/se(a)``."""
    rows = []
    for (setting, scores, stat), part in frame.groupby(["setting", "scores", "statistic"], sort=False):
        k = part["K"].to_numpy(dtype=np.float64)
        x = np.stack([np.ones_like(k), 1.0 / k], axis=1)
        beta, cov = _wls(x, part["mc"].to_numpy(), part["se"].to_numpy())
        se_a = float(np.sqrt(cov[0, 0]))
        exact = float(part["exact"].iloc[0])
        rows.append({"setting": setting, "scores": scores, "statistic": stat, "intercept": float(beta[0]),
                     "intercept_se": se_a, "exact": exact, "z": (float(beta[0]) - exact) / se_a,
                     "slope_c": float(beta[1])})
    return pd.DataFrame(rows)


def rate(frame: pd.DataFrame, statistics=("second_trace", "log_z"), resolved: float = 3.0) -> pd.DataFrame:
    r"""Per ``(setting, scores, statistic)``: the slope of ``log|gap|`` against ``log K`` (weighted least squares,
    ``se(log|gap|) = se/|gap|``) and its standard error; ``resolved`` is whether every ``|gap| ≥ resolved·se``
    (otherwise the slope is not fitted: the gap is within the noise)."""
    rows = []
    part_of = frame[frame["statistic"].isin(statistics)]
    for (setting, scores, stat), part in part_of.groupby(["setting", "scores", "statistic"], sort=False):
        gap, se = part["abs_gap"].to_numpy(), part["se"].to_numpy()
        ok = bool(np.all(gap >= resolved * se))
        slope, slope_se = np.nan, np.nan
        if ok:
            logk = np.log(part["K"].to_numpy(dtype=np.float64))
            beta, cov = _wls(np.stack([np.ones_like(logk), logk], axis=1), np.log(gap), se / gap)
            slope, slope_se = float(beta[1]), float(np.sqrt(cov[1, 1]))
        rows.append({"setting": setting, "scores": scores, "statistic": stat, "resolved": ok, "slope": slope,
                     "slope_se": slope_se})
    return pd.DataFrame(rows)
