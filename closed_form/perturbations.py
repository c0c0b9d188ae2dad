r"""Score-estimation error models: ``ŝ_i = s_i + δ_i``, calibrated by their *training-side* size.

Score matching controls ``ε_i(t) = ‖δ_i(·, t)‖_{L²(q^i_t)}`` — the error measured where source ``i`` lives. Sampling
a composed target pays ``‖δ_i‖_{L²(Q_t)}`` (or ``L²(π_t)``) instead. Every model here states both:
``training_norm(t)`` and ``norm_under(dist, t)`` (exact when ``dist`` is Gaussian).

Models (``math.md`` §5, issue 5):

1. :class:`AffineScoreError` ``δ(x, t) = −A_δ(t) x + b_δ(t)`` — the affine errors whose effect on the samplers is
   exact through :mod:`closed_form.laws` (its :meth:`~AffineScoreError.field` adds to a naive field with
   :func:`closed_form.laws.add_fields`). Constructors: :func:`precision_error` (the source's diffused precision
   misestimated by a relative ``η(t)``, calibrated to ``ε``), :func:`calibrated_affine_error` (any direction,
   rescaled to ``ε``) and :func:`misspecification_error` (the exact score difference of a refit source).
2. :func:`fit_gaussian_mle` — maximum-likelihood refits from ``n`` draws [paper, revision].
3. :class:`DensityPowerError` — smooth, nonlinear, OOD-growing: ``δ ∝ q^i_t(x)^{−γ}`` (``0 < γ < ½``), small where
   ``q^i_t`` has mass and growing as it thins out; exactly calibrated for Gaussian sources.
4. :class:`DensityRatioError` — ``‖δ‖ ∝ dQ_t/dq^i_t``, the Cauchy–Schwarz equality case of the transfer bound.

All ``delta`` methods are JAX functions of ``(x, t)`` with ``t`` possibly traced.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from closed_form.errors import CatcompError, ShapeMismatchError
from closed_form.gaussian import Gaussian


def _affine_moments(a, b, dist: Gaussian):
    r"""For ``δ(x) = −A x + b`` and ``x ~ N(m, P)``: ``(E‖δ‖², E‖δ‖⁴)`` with ``M = A P Aᵀ``, ``ν = −A m + b``:
    ``E‖δ‖² = tr M + ‖ν‖²`` and ``E‖δ‖⁴ = (tr M + ‖ν‖²)² + 2 tr(M²) + 4 νᵀMν``."""
    m_mat = a @ dist.cov @ a.T
    nu = -a @ dist.mean + b
    second = jnp.trace(m_mat) + nu @ nu
    fourth = second**2 + 2.0 * jnp.trace(m_mat @ m_mat) + 4.0 * nu @ m_mat @ nu
    return second, fourth


class AffineScoreError:
    r"""``δ(x, t) = −A_δ(t) x + b_δ(t)`` for source ``source`` (a :class:`Gaussian`) under ``schedule``.

    ``field`` is a callable ``t ↦ (A_δ(t), b_δ(t))`` — the same convention as :mod:`closed_form.laws`, so
    ``add_fields(naive_field, weight * error.field)`` is the perturbed naive field (see :func:`weighted_field`).
    """

    def __init__(self, source: Gaussian, schedule, field, name: str = "affine"):
        if not isinstance(source, Gaussian):
            raise CatcompError("AffineScoreError needs a Gaussian source (its norms are then exact).")
        self.source, self.schedule, self.field, self.name = source, schedule, field, name

    def delta(self, x, t):
        """``δ(x, t)`` for ``x`` of shape ``(..., d)``."""
        a, b = self.field(t)
        return -jnp.asarray(x) @ a.T + b

    def training_norm(self, t):
        r"""``ε(t) = ‖δ(·, t)‖_{L²(q_t)}`` with ``q_t`` the diffused source; exact."""
        return self.norm_under(self.source.noised(self.schedule, t), t)

    def norm_under(self, dist: Gaussian, t):
        r"""``‖δ(·, t)‖_{L²(dist)} = (tr(A P Aᵀ) + ‖−A m + b‖²)^{1/2}``; exact."""
        a, b = self.field(t)
        return jnp.sqrt(_affine_moments(a, b, dist)[0])

    def fourth_moment_under(self, dist: Gaussian, t):
        r"""``E_{dist}‖δ(·, t)‖⁴``; exact (Isserlis)."""
        a, b = self.field(t)
        return _affine_moments(a, b, dist)[1]


def weighted_field(weight: float, error: AffineScoreError):
    """The field of ``weight · δ``: what error ``δ`` of a source with composition weight ``weight`` adds to the
    composed score."""

    def field(t):
        a, b = error.field(t)
        return weight * a, weight * b

    return field


def _diffused_precision(source: Gaussian, schedule, t):
    a = schedule.alpha(t)
    cov = a**2 * source.cov + schedule.sigma2(t) * jnp.eye(source.dim)
    prec = jnp.linalg.inv(cov)
    return 0.5 * (prec + prec.T), a * source.mean


def _check_eps(eps):
    if not (np.isfinite(eps) and eps >= 0):
        raise CatcompError(f"the training-side error ε must be a finite number ≥ 0, got {eps!r}.")


def precision_error(source: Gaussian, schedule, eps: float, sign: float = 1.0) -> AffineScoreError:
    r"""The diffused source's precision misestimated by a relative ``η(t)``: ``ŝ = −(1 + sign·η(t)) C_t⁻¹(x − α_tμ)``,
    i.e. ``δ = −sign·η(t) C_t⁻¹(x − α_t μ)``, with ``η(t) = ε / √(tr C_t⁻¹)`` so that ``‖δ‖_{L²(q_t)} = ε`` at every
    ``t`` (since ``E‖C⁻¹(x − αμ)‖² = tr C⁻¹``). The perturbed source is itself Gaussian at every ``t``."""
    _check_eps(eps)
    if sign not in (-1.0, 1.0, -1, 1):
        raise CatcompError(f"sign must be +1 or −1, got {sign!r}.")

    def field(t):
        prec, m = _diffused_precision(source, schedule, t)
        eta = sign * eps / jnp.sqrt(jnp.trace(prec))
        return eta * prec, eta * prec @ m

    return AffineScoreError(source, schedule, field, name=f"precision(ε={eps:g}, sign={sign:+g})")


def calibrated_affine_error(source: Gaussian, schedule, eps: float, direction) -> AffineScoreError:
    r"""An affine error along ``direction`` (a field ``t ↦ (A₀(t), b₀(t))``) rescaled at each ``t`` so that
    ``‖δ‖_{L²(q_t)} = ε``."""
    _check_eps(eps)
    base = AffineScoreError(source, schedule, direction)

    def field(t):
        a0, b0 = direction(t)
        scale = eps / base.training_norm(t)
        return scale * a0, scale * b0

    return AffineScoreError(source, schedule, field, name=f"affine(ε={eps:g})")


def fit_gaussian_mle(key, source, n: int) -> Gaussian:
    r"""Maximum-likelihood Gaussian fit to ``n`` draws of ``source``: sample mean and the ``1/n`` sample covariance.
    The paper's revision refits sources this way with ``n = 20,000`` [paper]."""
    if int(n) != n or n <= source.dim:
        raise CatcompError(f"a maximum-likelihood fit in d={source.dim} needs an integer n > d, got {n!r}.")
    x = source.sample(key, int(n))
    mean = jnp.mean(x, axis=0)
    xc = x - mean
    return Gaussian(mean, xc.T @ xc / n)


def misspecification_error(source: Gaussian, fitted: Gaussian, schedule) -> AffineScoreError:
    r"""``δ(x, t) = ∇log p̂_t(x) − ∇log q_t(x)``: the exact scores of the diffused fit ``p̂`` used in place of the
    source's. ``A_δ = Ĉ_t⁻¹ − C_t⁻¹``, ``b_δ = Ĉ_t⁻¹ α_t μ̂ − C_t⁻¹ α_t μ``. FKC driven by these scores targets the exact
    composition of the fits, ``Q̂``."""
    if fitted.dim != source.dim:
        raise ShapeMismatchError(f"fitted has dimension {fitted.dim}, source {source.dim}; they must match.")

    def field(t):
        p_hat, m_hat = _diffused_precision(fitted, schedule, t)
        p, m = _diffused_precision(source, schedule, t)
        return p_hat - p, p_hat @ m_hat - p @ m

    return AffineScoreError(source, schedule, field, name="misspecified")


def _unit(direction, dim):
    u = np.asarray(direction, dtype=np.float64)
    if u.shape != (dim,) or not np.all(np.isfinite(u)) or np.linalg.norm(u) == 0:
        raise CatcompError(f"direction must be a finite non-zero vector of shape ({dim},), got {direction!r}.")
    return jnp.asarray(u / np.linalg.norm(u))


def _quadratic_mgf(shift, cov, mat):
    r"""``E exp(yᵀ M y)`` for ``y ~ N(δ, S)``: ``|I − 2SM|^{-1/2} exp(½ δᵀ(S⁻¹ P⁻¹ S⁻¹ − S⁻¹)δ)`` with
    ``P = S⁻¹ − 2M``; ``inf`` unless ``P ≻ 0``."""
    s_inv = jnp.linalg.inv(cov)
    p = s_inv - 2.0 * mat
    p = 0.5 * (p + p.T)
    ok = jnp.linalg.eigvalsh(p)[0] > 0
    p_inv = jnp.linalg.inv(jnp.where(ok, p, jnp.eye(p.shape[0])))
    v = s_inv @ shift
    _, logdet = jnp.linalg.slogdet(jnp.eye(p.shape[0]) - 2.0 * cov @ mat)
    log_val = -0.5 * logdet + 0.5 * (v @ p_inv @ v - shift @ v)
    return jnp.where(ok, jnp.exp(log_val), jnp.inf)


class DensityPowerError:
    r"""An OOD-growing error: ``δ(x, t) = ε · u · e^{γ D_t(x)/2} (1 − 2γ)^{d/4}`` with ``D_t(x) = (x − α_tμ)ᵀC_t⁻¹(x −
    α_tμ)`` the squared Mahalanobis distance from the diffused Gaussian source — i.e. ``‖δ‖ ∝ q_t(x)^{−γ}``.

    ``0 < γ < ½``. Since ``E_{q_t} e^{γD} = (1 − 2γ)^{−d/2}``, ``‖δ‖_{L²(q_t)} = ε`` exactly at every ``t``; under a
    Gaussian ``N(m, S)``, ``E‖δ‖² = ε²(1 − 2γ)^{d/2} E e^{γD}`` in closed form (infinite when ``S⁻¹ − 2γC_t⁻¹`` is not
    positive definite: the error grows faster than the sampling law's tails decay).
    """

    def __init__(self, source: Gaussian, schedule, eps: float, gamma: float = 0.25, direction=None):
        if not isinstance(source, Gaussian):
            raise CatcompError("DensityPowerError is calibrated exactly for a Gaussian source.")
        _check_eps(eps)
        if not 0.0 < gamma < 0.5:
            raise CatcompError(f"gamma must lie in (0, 1/2) for a finite training-side norm, got {gamma!r}.")
        self.source, self.schedule, self.eps, self.gamma = source, schedule, float(eps), float(gamma)
        self.u = _unit(np.ones(source.dim) if direction is None else direction, source.dim)
        self.name = f"density-power(ε={eps:g}, γ={gamma:g})"

    def _scale(self, x, t):
        prec, m = _diffused_precision(self.source, self.schedule, t)
        y = jnp.asarray(x) - m
        maha = jnp.einsum("...i,ij,...j->...", y, prec, y)
        return self.eps * jnp.exp(0.5 * self.gamma * maha + 0.25 * self.source.dim * jnp.log1p(-2 * self.gamma))

    def delta(self, x, t):
        return self._scale(x, t)[..., None] * self.u

    def sq_norm_under(self, dist: Gaussian, t):
        r"""``E_{dist}‖δ(·, t)‖²`` in closed form (``inf`` when not integrable)."""
        prec, m = _diffused_precision(self.source, self.schedule, t)
        mgf = _quadratic_mgf(dist.mean - m, dist.cov, self.gamma * prec)
        return self.eps**2 * (1 - 2 * self.gamma) ** (self.source.dim / 2) * mgf

    def fourth_moment_under(self, dist: Gaussian, t):
        r"""``E_{dist}‖δ(·, t)‖⁴ = ε⁴(1 − 2γ)^d E e^{2γD}`` in closed form (``inf`` when not integrable)."""
        prec, m = _diffused_precision(self.source, self.schedule, t)
        mgf = _quadratic_mgf(dist.mean - m, dist.cov, 2.0 * self.gamma * prec)
        return self.eps**4 * (1 - 2 * self.gamma) ** self.source.dim * mgf

    def norm_under(self, dist: Gaussian, t):
        """``‖δ(·, t)‖_{L²(dist)}``."""
        return jnp.sqrt(self.sq_norm_under(dist, t))

    def training_norm(self, t):
        """``‖δ(·, t)‖_{L²(q_t)}``, equal to ``ε`` by construction."""
        return self.norm_under(self.source.noised(self.schedule, t), t)


class MixtureDensityPowerError:
    r"""The OOD-growing error ``δ(x, t) = ε · u · q_t(x)^{−γ} / κ(t)`` for any source with ``logpdf``/``sample``
    (Gaussian mixtures in particular), with ``κ(t)² = E_{q_t}[q_t^{−2γ}]`` estimated by Monte Carlo.

    ``κ`` is estimated at every time of ``times`` (default: the samplers' grid :func:`reverse_time_grid` with 500
    steps, so a sampler on that grid only ever uses calibrated times) from ``n_mc`` draws of ``q_t`` each, in log
    space; between grid times ``log κ²`` is interpolated linearly. The training-side norm is therefore ``ε`` up to
    the stated Monte Carlo error :meth:`calibration_stderr` (relative).
    """

    def __init__(self, source, schedule, eps: float, gamma: float = 0.25, *, key, n_mc: int = 20_000,
                 times=None, direction=None, log_density=None):
        _check_eps(eps)
        if not 0.0 < gamma < 0.5:
            raise CatcompError(f"gamma must lie in (0, 1/2) for a finite training-side norm, got {gamma!r}.")
        from closed_form.schedules import reverse_time_grid

        self.source, self.schedule, self.eps, self.gamma = source, schedule, float(eps), float(gamma)
        self.u = _unit(np.ones(source.dim) if direction is None else direction, source.dim)
        # ``log_density(x, t) = log q_t(x)``; a faster equivalent may be passed (the samplers' exact scores have one).
        self.log_density = log_density or (lambda x, t: self.source.noised(self.schedule, t).logpdf(x))
        grid = reverse_time_grid(schedule, 500) if times is None else np.asarray(times, dtype=np.float64)
        self.times = np.unique(np.concatenate([grid, [0.0, schedule.T]]))

        def calibrate(t, k):
            q_t = source.noised(schedule, t)
            v = -2.0 * self.gamma * q_t.logpdf(q_t.sample(k, n_mc))
            w = jnp.exp(v - jnp.max(v))
            return jnp.max(v) + jnp.log(jnp.mean(w)), jnp.std(w, ddof=1) / np.sqrt(n_mc) / jnp.mean(w)

        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(len(self.times)))
        log_k2, rel_se = jax.jit(jax.vmap(calibrate))(jnp.asarray(self.times), keys)
        self.log_kappa2 = log_k2
        self._rel_se = np.asarray(rel_se)
        self.name = f"mixture-density-power(ε={eps:g}, γ={gamma:g})"

    def calibration_stderr(self, t) -> float:
        """Relative standard error of ``‖δ‖²_{L²(q_t)}/ε²`` at the nearest calibration time."""
        return float(self._rel_se[np.argmin(np.abs(self.times - t))])

    def delta(self, x, t):
        log_k2 = jnp.interp(t, jnp.asarray(self.times), self.log_kappa2)
        log_q = self.log_density(x, t)
        return (self.eps * jnp.exp(-self.gamma * log_q - 0.5 * log_k2))[..., None] * self.u

    def norm_under_samples(self, samples, t) -> tuple[float, float]:
        """``(‖δ‖_{L²}, standard error)`` under the law of ``samples`` (Monte Carlo; delta method for the SE)."""
        v = np.sum(np.asarray(self.delta(samples, t)) ** 2, axis=-1)
        m, se = v.mean(), v.std(ddof=1) / np.sqrt(v.size)
        return float(np.sqrt(m)), float(se / (2 * np.sqrt(m)))


class DensityRatioError:
    r"""``δ(x) = ε · u · r(x) / ‖r‖_{L²(p)}`` with ``r = dq/dp`` for Gaussians ``p`` (training) and ``q`` (sampling) at
    one time: the error that attains equality in ``E_q‖δ‖ ≤ ‖δ‖_{L²(p)} √(1 + χ²(q‖p))``, because
    ``E_q r = E_p r² = ‖r‖²_{L²(p)} = 1 + χ²(q‖p)``. Requires ``2Σ_p − Σ_q ≻ 0``."""

    def __init__(self, p: Gaussian, q: Gaussian, eps: float, direction=None):
        from closed_form.divergences import chi2

        _check_eps(eps)
        self.p, self.q, self.eps = p, q, float(eps)
        self.ress_inverse = 1.0 + float(chi2(q, p))
        if not np.isfinite(self.ress_inverse):
            raise CatcompError("dq/dp is not square-integrable under p (2Σ_p − Σ_q is not positive definite).")
        self.u = _unit(np.ones(p.dim) if direction is None else direction, p.dim)
        self.name = f"density-ratio(ε={eps:g})"

    def delta(self, x, t=None):
        r = jnp.exp(self.q.logpdf(x) - self.p.logpdf(x))
        return (self.eps * r / np.sqrt(self.ress_inverse))[..., None] * self.u


__all__ = [
    "AffineScoreError",
    "DensityPowerError",
    "DensityRatioError",
    "MixtureDensityPowerError",
    "calibrated_affine_error",
    "fit_gaussian_mle",
    "misspecification_error",
    "precision_error",
    "weighted_field",
]
