r"""The paper's composed targets, each computed two independent ways.

:func:`exact_target_summary` gives one row per setting: the target's log normalizer in closed form (where one exists)
and by adaptive cubature, its exact mean and covariance, and how well draws of the exact target sampler match those
moments (standardized deviations). Draws for the report's scatter figure are :mod:`verify.experiments.target_samples`.
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from closed_form import Gaussian, paper_setting


def _standardized_moment_deviations(x: np.ndarray, mean: np.ndarray, cov: np.ndarray):
    r"""Largest ``|z|`` of the sample mean and of the sample second central moments against exact values.

    Mean ``i``: ``z = (x̄_i − μ_i) / √(Σ_ii / n)``. Covariance ``(i, j)`` with the exact mean: ``u = (x_i − μ_i)
    (x_j − μ_j)`` has expectation ``Σ_ij`` and ``z = (ū − Σ_ij) / (sd(u)/√n)`` (its variance estimated from the
    draws).
    """
    n, d = x.shape
    z_mean = (x.mean(0) - mean) / np.sqrt(np.diag(cov) / n)
    centered = x - mean
    z_cov = []
    for i in range(d):
        for j in range(i, d):
            u = centered[:, i] * centered[:, j]
            z_cov.append((u.mean() - cov[i, j]) / (u.std(ddof=1) / np.sqrt(n)))
    return float(np.max(np.abs(z_mean))), float(np.max(np.abs(z_cov)))


def exact_target_summary(setting: str, n_samples: int, seed: int, rtol: float = 1e-10) -> pd.DataFrame:
    """One row describing the exact target ``Q ∝ P_a1 · P_a2 / P_0`` of the paper's setting ``setting``.

    Columns: the labels (FC/NFC, ID/OOD), ``log_z_closed_form`` (NaN when the target has no closed form),
    ``log_z_cubature``, their absolute difference (NaN without a closed form), the exact mean and covariance (closed
    form, else cubature), the exact sampler's method and acceptance rate (NaN for direct sampling), and the largest
    standardized deviations of ``n_samples`` draws from the exact moments. ``rtol`` is the cubature's relative
    tolerance (recorded in the ``rtol`` column, so checks can scale their tolerance with it).
    """
    s = paper_setting(setting)
    comp = s.composition
    log_z_cub, mean_cub, cov_cub = comp.quadrature_moments(rtol=rtol)
    if comp.has_closed_form_target:
        log_z_cf = float(comp.log_normalizer())
        target = comp.target
        mean, cov = np.asarray(target.mean), np.asarray(target.cov)
        kind = "Gaussian" if isinstance(target, Gaussian) else "mixture"
    else:
        log_z_cf = float("nan")
        mean, cov = np.asarray(mean_cub), np.asarray(cov_cub)
        kind = "no closed form"
    draw = comp.sample_target(jax.random.key(seed), int(n_samples))
    z_mean, z_cov = _standardized_moment_deviations(np.asarray(draw.samples), mean, cov)
    return pd.DataFrame([{
        "setting": setting,
        "conditionals": {True: "FC", False: "NFC", None: "mixture"}[s.factorized],
        "regime": "ID" if s.in_distribution else "OOD",
        "target": kind,
        "log_z_closed_form": log_z_cf,
        "log_z_cubature": float(log_z_cub),
        "log_z_abs_diff": abs(log_z_cf - float(log_z_cub)) if comp.has_closed_form_target else float("nan"),
        "moments_abs_diff": float(max(np.max(np.abs(mean - mean_cub)), np.max(np.abs(cov - cov_cub)))),
        "mean_0": float(mean[0]), "mean_1": float(mean[1]),
        "cov_00": float(cov[0, 0]), "cov_01": float(cov[0, 1]), "cov_11": float(cov[1, 1]),
        "sampler": draw.method,
        "acceptance_rate": float("nan") if draw.acceptance_rate is None else float(draw.acceptance_rate),
        "n_samples": int(n_samples),
        "max_z_mean": z_mean,
        "max_z_cov": z_cov,
        "rtol": float(rtol),
    }])
