r"""The revision's Monte Carlo sensitivity metric and error amplification, beside the exact metric.

For ``Q ∝ Π_j P_j^{w_j}`` and a source ``P_i``, the importance weights of ``Q`` under ``P_i`` are, up to a constant,
``log w_i(x) = Σ_j w_j log P_j(x) − log P_i(x)`` (for ``(1, 1, −1)``: ``log P_A + log P_B − 2 log P_0`` on ``P_0``
draws, ``log P_B − log P_0`` on ``P_A`` draws, ``log P_A − log P_0`` on ``P_B`` draws). The authors' estimator of
``log rESS_i⁻¹ = log(1 + χ²(Q‖P_i))`` is the self-normalized

.. math:: \widehat{\log rESS_i^{-1}} = \log\frac{N\sum_n w_n^2}{(\sum_n w_n)^2} \;\in [0, \log N],

on ``N`` draws of ``P_i``; the metric is ``max_i`` of it, and the reported value the median over independent draws.
Because ``Σ w² ≤ (Σ w)²`` it can never exceed ``log N``; it is consistent when ``E_{P_i} w² < ∞`` and has a
``N^{−1/2}`` fluctuation when ``E_{P_i} w⁴ < ∞`` (delta method; ``paper_notes.md``).

The amplification ``A`` is the mean over maximum-likelihood refits of ``TV(Q, Q̂)/Σ_i TV(P_i, P̂_i)`` (``Q̂`` the exact
composition of the refits, refits with an improper ``Q̂`` dropped), each TV estimated as the authors do, on a fixed
sample of the true law: ``TV(P, P̂) = E_P[max(0, 1 − p̂/p)]`` with the log ratio capped at 50.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.scipy.special import logsumexp
from scipy.stats import spearmanr

from closed_form import Gaussian
from closed_form.errors import CatcompError
from closed_form.families import FAMILY_SOURCE_LABELS, exact_log_ress_inverse, family_configs
from closed_form.products import gaussian_power_product
from verify.experiments.montecarlo import fit_gaussian_mle
from verify.samplers.staging import CPU_COMPILER_OPTIONS

#: The authors' sizes: MLE refits on 20 000 draws per source, 2000 refits, TV on 8192 draws, the metric on
#: 20 000 draws per source and 12 independent draws.
PAPER_SIZES = dict(n_fit=20_000, n_refits=2_000, n_tv=8_192, n_eval=20_000, n_draws=12)

_TV_LOG_RATIO_CAP = 50.0  # the authors' cap on log p̂/p in the TV estimator


def neg_log_ress(log_w) -> jax.Array:
    r"""``−log rESS = log(N Σ w²/(Σ w)²)`` of self-normalized weights ``exp(log_w)`` over the last axis; in
    ``[0, log N]`` (Cauchy–Schwarz below, ``Σ w² ≤ (Σ w)²`` above)."""
    log_w = jnp.asarray(log_w)
    n = log_w.shape[-1]
    return logsumexp(2.0 * log_w, axis=-1) + math.log(n) - 2.0 * logsumexp(log_w, axis=-1)


def composition_log_weights(sources, weights, i: int, x) -> jax.Array:
    r"""``log w_i(x) = Σ_j w_j log P_j(x) − log P_i(x)``: the unnormalized log density ratio of the composition to
    source ``i`` (constant dropped), at points ``x`` of shape ``(..., d)``."""
    total = sum(w * s.logpdf(x) for w, s in zip(weights, sources) if w != 0.0)
    return total - sources[i].logpdf(x)


def ress_estimates(key, sources, weights, n_eval: int, n_draws: int) -> np.ndarray:
    r"""The authors' estimator of ``log rESS_i⁻¹`` per draw and source: array ``(n_draws, n_sources)``, each entry
    from ``n_eval`` fresh draws of ``P_i``."""
    keys = jax.vmap(lambda d: jax.random.fold_in(key, d))(jnp.arange(n_draws))
    return np.asarray(_ress_draws(keys, tuple(sources), tuple(float(w) for w in weights), int(n_eval)))


@partial(jax.jit, static_argnums=(2, 3), compiler_options=CPU_COMPILER_OPTIONS)
def _ress_draws(keys, sources, weights, n_eval):
    # Sources are pytree arguments, so one compilation serves every configuration of a family.
    def one(k):
        out = []
        for i, src in enumerate(sources):
            x = src.sample(jax.random.fold_in(k, i), n_eval)
            out.append(neg_log_ress(composition_log_weights(sources, weights, i, x)))
        return jnp.stack(out)

    return jax.vmap(one)(keys)


def tv_on_samples(log_p_true, log_p_hat) -> jax.Array:
    r"""``TV(P, P̂) ≈ mean_n max(0, 1 − p̂(x_n)/p(x_n))`` over draws ``x_n ~ P`` (the log ratio capped at 50, as the
    authors do); broadcasts over leading axes of ``log_p_hat``."""
    ratio = jnp.minimum(log_p_hat - log_p_true, _TV_LOG_RATIO_CAP)
    return jnp.mean(jnp.clip(1.0 - jnp.exp(ratio), 0.0, None), axis=-1)


def _compose_batch(fits, weights):
    """Exact composition of fitted Gaussians (batched): ``Λ = Σ w_j Λ̂_j``, ``η = Σ w_j Λ̂_j μ̂_j``; returns
    ``(mean, cov, proper)`` with a placeholder identity covariance where ``Λ`` is not positive definite."""
    precisions = [jnp.linalg.inv(f.cov) for f in fits]  # batched fits: the class's unbatched properties do not apply
    lam = sum(w * p for w, p in zip(weights, precisions))
    eta = sum(w * jnp.einsum("...ij,...j->...i", p, f.mean) for w, p, f in zip(weights, precisions, fits))
    lam = 0.5 * (lam + jnp.swapaxes(lam, -1, -2))
    proper = jnp.linalg.eigvalsh(lam)[..., 0] > 0.0
    safe = jnp.where(proper[..., None, None], lam, jnp.eye(lam.shape[-1]))
    cov = jnp.linalg.inv(safe)
    return jnp.einsum("...ij,...j->...i", cov, eta), 0.5 * (cov + jnp.swapaxes(cov, -1, -2)), proper


def _batch_logpdf(mean, cov, x):
    """``log N(x; mean_r, cov_r)`` for a batch ``r`` of Gaussians at shared points ``x`` ``(n, d)`` → ``(R, n)``."""
    prec = jnp.linalg.inv(cov)
    diff = x[None] - mean[:, None, :]
    maha = jnp.einsum("rni,rij,rnj->rn", diff, prec, diff)
    return -0.5 * maha - 0.5 * jnp.linalg.slogdet(cov)[1][:, None] - 0.5 * x.shape[-1] * math.log(2 * math.pi)


def refit_amplification(key, composition, n_fit: int, n_refits: int, n_tv: int, chunk: int = 50) -> dict:
    r"""Error amplification of maximum-likelihood refits, estimated as the authors do.

    Each refit fits every source by :func:`~verify.experiments.montecarlo.fit_gaussian_mle` on ``n_fit`` fresh draws,
    composes the fits exactly and records ``A_r = TV(Q, Q̂_r)/Σ_i TV(P_i, P̂_{i,r})``, every TV by
    :func:`tv_on_samples` on one fixed sample of ``n_tv`` draws of the true law (shared by the refits).

    Returns a dict: ``A`` (mean of ``A_r`` over proper refits), ``A_se`` (its standard error over refits),
    ``A_improper_as_one`` (the mean with improper refits counted at ``TV(Q, Q̂) = 1``, the largest a TV can be),
    ``n_proper``, ``n_dropped``.
    """
    sources, weights = composition.sources, tuple(float(w) for w in composition.weights)
    if not all(isinstance(s, Gaussian) for s in sources):
        raise CatcompError("refit_amplification needs Gaussian sources (maximum-likelihood Gaussian refits).")
    q = composition.target
    k_tv, k_fit = jax.random.split(key)
    laws = (q, *sources)
    tv_x = [law.sample(jax.random.fold_in(k_tv, j), n_tv) for j, law in enumerate(laws)]
    tv_lp = [law.logpdf(x) for law, x in zip(laws, tv_x)]

    keys = jax.vmap(lambda r: jax.random.fold_in(k_fit, r))(jnp.arange(n_refits))
    parts = [_refit_batch(keys[i:i + chunk], tuple(sources), tuple(tv_x), tuple(tv_lp), weights, int(n_fit))
             for i in range(0, n_refits, chunk)]
    tv_q, tv_sum, proper = (np.concatenate([np.asarray(p[j]) for p in parts]) for j in range(3))
    ratio = tv_q / tv_sum
    kept = ratio[proper]
    n_proper = int(proper.sum())
    return {
        "A": float(kept.mean()) if n_proper else float("nan"),
        "A_se": float(kept.std(ddof=1) / math.sqrt(n_proper)) if n_proper > 1 else float("nan"),
        "A_improper_as_one": float(ratio.mean()),
        "n_proper": n_proper,
        "n_dropped": int(n_refits - n_proper),
    }


@partial(jax.jit, static_argnums=(4, 5), compiler_options=CPU_COMPILER_OPTIONS)
def _refit_batch(keys, sources, tv_x, tv_lp, weights, n_fit):
    """``(TV(Q, Q̂_r) or 1 when improper, Σ_i TV(P_i, P̂_{i,r}), proper_r)`` for a batch of refit keys."""
    fits = [jax.vmap(lambda k, s=s, j=j: fit_gaussian_mle(jax.random.fold_in(k, j), s, n_fit))(keys)
            for j, s in enumerate(sources)]
    mean_q, cov_q, proper = _compose_batch(fits, weights)
    tv_src = jnp.stack([tv_on_samples(tv_lp[j + 1], _batch_logpdf(f.mean, f.cov, tv_x[j + 1]))
                        for j, f in enumerate(fits)], axis=-1)
    tv_q = tv_on_samples(tv_lp[0], _batch_logpdf(mean_q, cov_q, tv_x[0]))
    return jnp.where(proper, tv_q, 1.0), tv_src.sum(-1), proper


def log_weight_moment(q: Gaussian, p: Gaussian, k: float) -> float:
    r"""``log E_P w^k = log ∫ Q^k P^{1−k}`` for ``w = dQ/dP`` between Gaussians (``(k − 1)`` times the Rényi
    divergence of order ``k``); ``+inf`` unless ``kΛ_Q − (k − 1)Λ_P ≻ 0``. Closed form by
    :func:`closed_form.products.gaussian_power_product`."""
    res = gaussian_power_product([k, 1.0 - k], [np.asarray(q.mean), np.asarray(p.mean)],
                                 [np.asarray(q.cov), np.asarray(p.cov)])
    return float(res.log_const) if res.min_eigenvalue > 0 else float("inf")


def fourth_moment_finite(composition, i: int) -> bool:
    r"""Whether ``E_{P_i} w_i⁴ = ∫ Q⁴/P_i³ < ∞`` (``4Λ_Q − 3Λ_i ≻ 0``). Where it holds, the estimator's
    fluctuation is ``O(N^{−1/2})``."""
    return bool(np.isfinite(log_weight_moment(composition.target, composition.sources[i], 4.0)))


def delta_method_sd(q: Gaussian, p: Gaussian, n: int) -> float:
    r"""Standard deviation of ``log(N Σw²/(Σw)²)`` to first order in ``1/N`` (delta method), from the exact moments
    ``m_k = E_P w^k`` of ``w = dQ/dP`` (``m_1 = 1``):

    .. math:: \operatorname{Var} ≈ \frac1N\Big[\frac{m_4 − m_2^2}{m_2^2} − \frac{4(m_3 − m_2)}{m_2} + 4(m_2 − 1)\Big];

    ``inf`` where ``m_4 = ∞``."""
    log_m = [log_weight_moment(q, p, k) for k in (2.0, 3.0, 4.0)]
    if not np.isfinite(log_m[2]):
        return float("inf")
    m2, m3, m4 = (math.exp(v) for v in log_m)
    var = ((m4 - m2**2) / m2**2 - 4.0 * (m3 - m2) / m2 + 4.0 * (m2 - 1.0)) / n
    return math.sqrt(max(var, 0.0))


def family_sweep(family: str, seed: int, n_fit: int = 20_000, n_refits: int = 40, n_tv: int = 8_192,
                 n_eval: int = 20_000, n_draws: int = 12, indices=None) -> pd.DataFrame:
    r"""One family of :mod:`closed_form.families`, configuration by configuration: the exact metric per source and
    its maximum, the authors' Monte Carlo estimate (median over ``n_draws`` draws, with its spread), the refit
    amplification ``A`` with its standard error and the refits dropped as improper, and the bounds
    ``rESS^{−1/2}`` from the exact and from the estimated metric.

    The defaults keep the authors' sample sizes but fewer refits (:data:`PAPER_SIZES` has theirs).
    """
    configs = family_configs(family)
    if indices is not None:
        configs = tuple(configs[i] for i in indices)
    key = jax.random.key(seed)
    rows = []
    for c in configs:
        comp = c.composition
        k = jax.random.fold_in(key, c.index)
        exact = exact_log_ress_inverse(comp)
        draws = ress_estimates(jax.random.fold_in(k, 0), comp.sources, tuple(comp.weights), n_eval, n_draws)
        per_draw = draws.max(axis=1)  # the metric of each draw: max over sources
        amp = refit_amplification(jax.random.fold_in(k, 1), comp, n_fit, n_refits, n_tv)
        row = {"family": family, "index": c.index, "knob": f"{c.symbol} = {c.value:.4g}", "knob_value": c.value,
               "exact": float(exact.max()), "estimate": float(np.median(per_draw)),
               "estimate_min": float(per_draw.min()), "estimate_max": float(per_draw.max()),
               "estimate_sd": float(per_draw.std(ddof=1)) if n_draws > 1 else 0.0,
               "log_n": math.log(n_eval), "n_draws": n_draws, "n_refits": n_refits,
               "fourth_moment_finite": all(fourth_moment_finite(comp, i) for i in range(3)),
               "delta_sd": delta_method_sd(comp.target, comp.sources[int(np.argmax(exact))], n_eval),
               **amp}
        for label, value, est in zip(FAMILY_SOURCE_LABELS, exact, np.median(draws, axis=0)):
            row[f"exact_{label}"] = float(value)
            row[f"estimate_{label}"] = float(est)
        row["bound_exact"] = float(np.exp(0.5 * row["exact"]))
        row["bound_estimate"] = float(np.exp(0.5 * row["estimate"]))
        rows.append(row)
    frame = pd.DataFrame(rows)
    # Within-family rank correlation of A with the metric, exact and estimated (∞ ranks above every finite value).
    frame["spearman_exact"] = _spearman(frame["A"], frame["exact"])
    frame["spearman_estimate"] = _spearman(frame["A"], frame["estimate"])
    return frame


def _spearman(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.all(b == b[0]) or np.all(a == a[0]):
        return float("nan")
    b = np.where(np.isinf(b), np.nanmax(np.where(np.isinf(b), np.nan, b), initial=0.0) + 1e6, b)
    return float(spearmanr(a, b).statistic)


__all__ = ["PAPER_SIZES", "composition_log_weights", "delta_method_sd", "family_sweep", "fourth_moment_finite",
           "log_weight_moment", "neg_log_ress",
           "ress_estimates", "refit_amplification", "tv_on_samples"]
