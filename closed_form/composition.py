r"""Geometric compositions ``Q ∝ Π_i P_i^{w_i}`` of Gaussian and Gaussian-mixture sources.

Three objects live here:

* the target ``Q`` itself, exact and normalized when closed form (Gaussian sources; mixtures with non-negative
  integer weights), with its unnormalized log density always;
* the geometric path ``π_t ∝ Π_i (q^i_t)^{w_i}`` built from the *diffused* sources, whose score
  ``Σ_i w_i ∇log q^i_t`` is what naive composition (and FKC) uses;
* the diffused target ``Q_t``, which in general differs from ``π_t``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from closed_form.errors import (
    CatcompError,
    ImproperCompositionError,
    InvalidWeightsError,
    NoClosedFormError,
    ShapeMismatchError,
)
from closed_form.fields import CodiagonalField, _WeightedPrecisions, add_fields
from closed_form.gaussian import Gaussian, _points
from closed_form.mixture import GaussianMixture
from closed_form.products import gaussian_power_product
from closed_form.quadrature import cubature_logpdf, gaussian_box, integrate_density
from closed_form.schedules import reverse_time_grid
from closed_form.validation import check_finite, check_points, is_concrete

MAX_PRODUCT_TERMS = 100_000


#: Proposals after which :meth:`Composition.sample_target`'s rejection sampler gives up (the paper's GMM settings
#: accept 36–96% of them, so 10⁸ is never reached by a valid target).
_MAX_REJECTION_DRAWS = 100_000_000


#: :meth:`Composition.sample_target` warns when its importance weights' effective sample size falls below this
#: fraction of the draws it returns: resampling then repeats draws, and the sample is poorer than its size says.
POOR_ESS_FRACTION = 1.0


# The arithmetic of the weighted sums and of the target samplers below runs as module-level jitted programs (the
# sources pytree arguments): one compiled program per shape, not one per eager operation, nor a fresh jax.jit of a
# bound method at every call. Inputs are validated outside, on concrete values.
@jax.jit
def _weighted_logpdf(laws, weights, x):
    """``Σ_i w_i log p_i(x)`` over ``laws`` (those of non-zero weight) and their ``weights``."""
    return sum(weights[i] * law.logpdf(x) for i, law in enumerate(laws))


@jax.jit
def _weighted_score(laws, weights, x):
    """``Σ_i w_i ∇log p_i(x)`` over ``laws`` (those of non-zero weight) and their ``weights``."""
    return sum(weights[i] * law.score(x) for i, law in enumerate(laws))


def _nonzero(weights, laws):
    """The laws of non-zero weight and their weights, as the arguments of :func:`_weighted_logpdf`."""
    keep = [i for i, wi in enumerate(weights) if wi != 0]
    return tuple(laws[i] for i in keep), jnp.asarray(np.asarray(weights, dtype=np.float64)[keep], dtype=jnp.float64)


@partial(jax.jit, static_argnums=2)
def _envelope_draws(env_mix, key, batch):
    """One batch of the rejection sampler: the next key, ``batch`` envelope draws and the logs of their uniforms."""
    key, k_x, k_u = jax.random.split(key, 3)
    x = env_mix.sample(k_x, batch)
    u = jax.random.uniform(k_u, (batch,), dtype=jnp.float64)
    return key, x, jnp.log(u)


@jax.jit
def _accepted(env_mix, log_z_env, x, logq, log_u):
    """Whether each envelope draw ``x`` is accepted: ``log u < log q(x) − (log Z_env + log env(x))``."""
    return log_u < logq - (log_z_env + env_mix.logpdf(x))


@partial(jax.jit, static_argnums=2)
def _proposals(proposal, key, n_proposals):
    k_x, k_r = jax.random.split(key)
    return proposal.sample(k_x, n_proposals), k_r


@partial(jax.jit, static_argnums=4)
def _importance_resample(proposal, x, logq, key, n):
    """``n`` of the proposals ``x`` resampled by their importance weights ``q/proposal``, and the weights' ESS."""
    w = jax.nn.softmax(logq - proposal.logpdf(x))
    ess = 1.0 / jnp.sum(w**2)
    idx = jax.random.choice(key, x.shape[0], (n,), p=w)
    return x[idx], ess


@jax.jit
def _eigen_terms(cov, mean, weight):
    """``Σ = U diag(λ) Uᵀ``: ``λ[None]``, ``(Uᵀμ)[None]``, the weight as ``(1, 1)`` and ``U``."""
    lam, vecs = jnp.linalg.eigh(cov)
    w = jnp.reshape(jnp.asarray(weight, dtype=jnp.float64), (1, 1))
    return lam[None], (vecs.T @ mean)[None], w, vecs


class ImportanceResamplingWarning(UserWarning):
    """An importance-resampled target sample whose weights have a small effective sample size (the message gives
    it): fewer independent draws' worth than the sample's size."""


class TargetSample(NamedTuple):
    """Draws from a composed target and how they were obtained.

    ``method`` is ``"closed_form"`` (exact), ``"rejection"`` (exact, with ``acceptance_rate``) or
    ``"importance_resampling"`` (approximate; ``ess`` is the effective sample size of the importance weights).
    """

    samples: jax.Array
    method: str
    acceptance_rate: float | None = None
    ess: float | None = None


class _Components(NamedTuple):
    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, d)
    covs: np.ndarray  # (K, d, d)


def _components(src) -> _Components:
    if isinstance(src, Gaussian):
        return _Components(np.ones(1), np.asarray(src.mean)[None], np.asarray(src.cov)[None])
    return _Components(np.asarray(src.weights), np.asarray(src.means), np.asarray(src.covs))


def _unique_covs(covs: np.ndarray) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for c in covs:
        if not any(np.array_equal(c, u) for u in out):
            out.append(c)
    return out


def _is_nonneg_integer(w: float) -> bool:
    return w >= 0 and float(w).is_integer()


class Composition:
    r"""The geometric composition ``Q ∝ Π_i P_i^{w_i}``.

    Parameters
    ----------
    sources : sequence of Gaussian or GaussianMixture
        All of the same dimension.
    weights : sequence of float
        Real exponents, possibly negative; not all zero.

    Raises
    ------
    ImproperCompositionError
        If ``Π_i P_i^{w_i}`` cannot be normalized. For Gaussian sources (and mixtures whose components share one
        covariance per source) the test is exact: the combined precision ``Σ_i w_i Σ_i⁻¹`` must be positive definite.
        For mixtures with differing component covariances the test is the sufficient tail condition
        "some choice of components for the negative-weight sources makes ``Σ_i w_i Σ_{i,k_i}⁻¹`` positive definite
        for every choice of components for the positive-weight sources".
    InvalidWeightsError, ShapeMismatchError, NonFiniteInputError
        For weights of the wrong length or non-finite, no sources, or sources of different dimensions.
    """

    def __init__(self, sources, weights):
        sources = tuple(sources)
        if not sources:
            raise ShapeMismatchError("compose needs at least one source.")
        for s in sources:
            if not isinstance(s, (Gaussian, GaussianMixture)):
                raise TypeError(f"sources must be Gaussian or GaussianMixture, got {type(s).__name__}.")
        dims = {s.dim for s in sources}
        if len(dims) != 1:
            raise ShapeMismatchError(f"sources have dimensions {sorted(dims)}; all must share one dimension.")
        if np.ndim(weights) != 1 or len(weights) != len(sources):
            raise ShapeMismatchError(
                f"weights has shape {np.shape(weights)}; expected ({len(sources)},), one weight per source."
            )
        check_finite(weights, "weights")
        w = np.asarray(weights, dtype=np.float64)
        if np.all(w == 0):
            raise InvalidWeightsError("all composition weights are zero; at least one must be non-zero.")
        self.sources = sources
        self.weights = w
        self.dim = sources[0].dim
        self._comps = [_components(s) for s in sources]
        self._tail_terms = self._certify_proper()
        self._product = self._product_mixture(positive_only=False)

    # ------------------------------------------------------------------ properness
    def _certify_proper(self):
        """Check integrability; return the Gaussian tail envelopes ``(mean, cov)`` that bound ``Q`` (for boxes)."""
        pos = [i for i, wi in enumerate(self.weights) if wi > 0]
        neg = [i for i, wi in enumerate(self.weights) if wi < 0]
        if not pos:
            raise ImproperCompositionError(
                f"weights {self.weights.tolist()} have no positive entry: Π P_i^(w_i) grows without bound and "
                "cannot be normalized; at least one weight must be positive."
            )
        pos_covs = [_unique_covs(self._comps[i].covs) for i in pos]
        neg_covs = [_unique_covs(self._comps[i].covs) for i in neg]
        best = None
        for neg_choice in itertools.product(*neg_covs):
            worst = None
            for pos_choice in itertools.product(*pos_covs):
                idx = pos + neg
                covs = list(pos_choice) + list(neg_choice)
                res = gaussian_power_product(self.weights[idx], np.zeros((len(idx), self.dim)), covs)
                if worst is None or res.min_eigenvalue < worst.min_eigenvalue:
                    worst = res
            if best is None or worst.min_eigenvalue > best.min_eigenvalue:
                best, best_neg = worst, neg_choice
            if worst.min_eigenvalue > 0:
                break
        if best.min_eigenvalue <= 0:
            direction = ", ".join(f"{v:.3g}" for v in best.min_direction)
            exact = all(len(c) == 1 for c in pos_covs + neg_covs)
            what = "is not normalizable" if exact else "could not be certified normalizable"
            raise ImproperCompositionError(
                f"the composition with weights {self.weights.tolist()} {what}: the combined precision "
                f"Σ_i w_i Σ_i⁻¹ has eigenvalue {best.min_eigenvalue:.6g} along ({direction}). It must be positive "
                "definite; lower the magnitude of the negative weights or raise the positive ones."
            )
        # Tail envelopes: for the certified negative choice, each tuple of positive components bounds Q by a
        # Gaussian shape; the union of their ±15σ boxes holds all but e^-112 of Q's mass.
        envelopes = []
        neg_parts = []
        for j, c in zip(neg, best_neg):
            k = next(k for k in range(len(self._comps[j].covs)) if np.array_equal(self._comps[j].covs[k], c))
            neg_parts.append((self.weights[j], self._comps[j].means[k], c))
        pos_comp_idx = [range(len(self._comps[i].weights)) for i in pos]
        for choice in itertools.product(*pos_comp_idx):
            ws = [self.weights[i] for i in pos] + [p[0] for p in neg_parts]
            ms = [self._comps[i].means[k] for i, k in zip(pos, choice)] + [p[1] for p in neg_parts]
            cs = [self._comps[i].covs[k] for i, k in zip(pos, choice)] + [p[2] for p in neg_parts]
            r = gaussian_power_product(ws, ms, cs)
            envelopes.append((r.mean, r.cov))
            if len(envelopes) > 1000:
                break
        return envelopes

    # ------------------------------------------------------------------ closed-form target
    def _product_mixture(self, positive_only: bool):
        """Expand ``Π P_i^{w_i}`` (or its positive-weight part) into a mixture over component tuples.

        Returns ``(weights, means, covs, log_normalizer)`` or ``None`` when there is no such expansion (a mixture
        with a negative or non-integer weight).
        """
        factors = []  # (exponent, _Components)
        for wi, c in zip(self.weights, self._comps):
            if wi == 0 or (positive_only and wi < 0):
                continue
            if len(c.weights) == 1:
                factors.append((wi, c))
            elif _is_nonneg_integer(wi):
                factors.extend([(1.0, c)] * int(wi))
            else:
                return None
        n_terms = math.prod(len(c.weights) for _, c in factors)
        if n_terms > MAX_PRODUCT_TERMS:
            return None
        logw, means, covs = [], [], []
        for choice in itertools.product(*[range(len(c.weights)) for _, c in factors]):
            pis = [c.weights[k] for (_, c), k in zip(factors, choice)]
            if min(pis) == 0:
                continue
            r = gaussian_power_product(
                [e for e, _ in factors],
                [c.means[k] for (_, c), k in zip(factors, choice)],
                [c.covs[k] for (_, c), k in zip(factors, choice)],
            )
            if r.mean is None:  # cannot happen for a certified composition's full product
                return None
            logw.append(r.log_const + float(np.sum(np.log(pis))))
            means.append(r.mean)
            covs.append(r.cov)
        logw = np.asarray(logw)
        log_z = float(np.logaddexp.reduce(logw))
        return np.exp(logw - log_z), np.asarray(means), np.asarray(covs), log_z

    @property
    def has_closed_form_target(self) -> bool:
        """Whether :attr:`target` exists (Gaussian sources, or mixtures with non-negative integer weights)."""
        return self._product is not None

    @property
    def target(self):
        r"""The exact normalized target ``Q``.

        Gaussian sources give ``N(Λ_Q⁻¹η_Q, Λ_Q⁻¹)`` with ``Λ_Q = Σ_i w_i Σ_i⁻¹`` and ``η_Q = Σ_i w_i Σ_i⁻¹ μ_i``;
        mixtures with non-negative integer weights give the product mixture over component tuples
        (:mod:`closed_form.products`).

        Raises
        ------
        NoClosedFormError
            When a mixture source carries a negative or non-integer weight; use
            :meth:`target_logpdf_unnormalized`, :meth:`log_normalizer` and :meth:`sample_target` instead.
        """
        if self._product is None:
            raise NoClosedFormError(
                f"the composition with weights {self.weights.tolist()} has no closed-form target: a Gaussian-mixture "
                "source carries a negative or non-integer weight. Closed forms exist for Gaussian sources with any "
                "weights and for mixtures with non-negative integer weights."
            )
        pw, means, covs, _ = self._product
        if all(isinstance(s, Gaussian) for s in self.sources):
            return Gaussian(means[0], covs[0])
        return GaussianMixture(pw, means, covs)

    # ------------------------------------------------------------------ densities and scores
    def target_logpdf_unnormalized(self, x):
        """``Σ_i w_i log p_i(x)``, shape ``(...)``."""
        check_points(x, self.dim)
        return _weighted_logpdf(*_nonzero(self.weights, self.sources), _points(x))

    def log_normalizer(self, rtol: float = 1e-10) -> float:
        """``log ∫ Π_i p_i^{w_i} dx``: closed form when :attr:`has_closed_form_target`, else adaptive cubature
        (dimensions 1 and 2 only) to relative tolerance ``rtol``.

        Raises
        ------
        NoClosedFormError
            For dimension above 2 without a closed form.
        """
        if self._product is not None:
            return self._product[3]
        if not hasattr(self, "_quad_log_z"):
            self._quad_log_z = self.quadrature_moments(rtol=rtol)[0]
        return self._quad_log_z

    def quadrature_moments(self, rtol: float = 1e-10):
        """``(log Z, mean, cov)`` of ``Q`` by adaptive cubature of ``Π p_i^{w_i}`` over a box that holds all but
        ``e^-112`` of its mass (dimensions 1 and 2). An independent route to what the closed forms give."""
        if self.dim > 2:
            raise NoClosedFormError(f"quadrature is offered in dimensions 1 and 2 only; this composition has d={self.dim}.")
        lower, upper = gaussian_box(self._tail_terms, n_std=15.0)
        # Σ_i w_i log p_i(x) (target_logpdf_unnormalized) from NumPy log-densities: cubature calls it hundreds of
        # times, and a compiled call per batch waits for XLA's thread pool whenever the cores are shared.
        parts = [(wi, cubature_logpdf(s)) for wi, s in zip(self.weights, self.sources) if wi != 0]
        return integrate_density(lambda x: sum(wi * lp(x) for wi, lp in parts), lower, upper, rtol=rtol)

    def target_logpdf(self, x):
        """Normalized ``log Q(x)`` (closed form, or via :meth:`log_normalizer` by quadrature in 1-D/2-D)."""
        return self.target_logpdf_unnormalized(x) - self.log_normalizer()

    def noised_sources(self, schedule, t):
        """The diffused sources ``q^i_t``."""
        return [s.noised(schedule, t) for s in self.sources]

    def naive_score(self, x, t, schedule):
        r"""``Σ_i w_i ∇log q^i_t(x)``: the score of the geometric path ``π_t``, which naive composition uses."""
        check_points(x, self.dim)
        return _weighted_score(*_nonzero(self.weights, self.noised_sources(schedule, t)), _points(x))

    def path_logpdf_unnormalized(self, x, t, schedule):
        r"""``Σ_i w_i log q^i_t(x)``: the unnormalized log density of ``π_t``."""
        check_points(x, self.dim)
        return _weighted_logpdf(*_nonzero(self.weights, self.noised_sources(schedule, t)), _points(x))

    def noised_target(self, schedule, t):
        """``Q_t``, the target diffused to time ``t`` (requires :attr:`target`)."""
        return self.target.noised(schedule, t)

    def target_score(self, x, t, schedule):
        r"""``∇log Q_t(x)``, the score of the diffused target (requires :attr:`target`)."""
        return self.noised_target(schedule, t).score(x)

    def path_composition(self, schedule, t) -> "Composition":
        """``π_t`` as a :class:`Composition` of the diffused sources (same weights)."""
        return Composition(self.noised_sources(schedule, t), self.weights)

    # ------------------------------------------------------------------ affine score fields
    def _require_gaussian_sources(self, what: str):
        if not all(isinstance(s, Gaussian) for s in self.sources):
            raise NoClosedFormError(
                f"{what} is affine in x only for Gaussian sources; this composition has mixture sources."
            )

    def naive_field(self, schedule):
        r"""The naive composed score as an affine *field* ``t ↦ (A_t, b_t)``, ``ŝ(x, t) = −A_t x + b_t``:

        ``A_t = Σ_i w_i C_i(t)⁻¹``, ``b_t = Σ_i w_i C_i(t)⁻¹ α_t μ_i`` with ``C_i(t) = α_t²Σ_i + σ_t²I``.
        Gaussian sources only (:class:`NoClosedFormError` otherwise). ``t`` may be traced.

        Each ``Σ_i = U_i diag(λ_i) U_iᵀ`` is eigendecomposed once, here, and the field is the sum
        (:func:`~closed_form.add_fields`) of one :class:`~closed_form.CodiagonalField` per source,
        ``w_i C_i(t)⁻¹ = U_i diag(w_i/(α_t²λ_i + σ_t²)) U_iᵀ``: an evaluation costs a matrix product per source
        instead of an inverse, which is what makes the exact laws fast in dimension 200.
        """
        self._require_gaussian_sources("the naive composed score")
        return geometric_field(self.sources, self.weights, schedule)

    def source_fields(self, schedule) -> tuple:
        r"""The exact diffused score of each source as an affine field, unweighted and in order:
        ``s_i(x, t) = −C_i(t)⁻¹x + C_i(t)⁻¹α_tμ_i``, each a :class:`~closed_form.CodiagonalField` in the eigenbasis
        of ``Σ_i``. What :func:`~closed_form.fkc_limit_law` takes (add an error with :func:`~closed_form.add_fields`).
        Gaussian sources only (:class:`NoClosedFormError` otherwise)."""
        self._require_gaussian_sources("a source score")
        return tuple(_diffused_precision_field(s, 1.0, schedule) for s in self.sources)

    def target_field(self, schedule):
        r"""The exact diffused-target score ``∇log Q_t`` as an affine field ``t ↦ (C_Q(t)⁻¹, C_Q(t)⁻¹ α_t μ_Q)``,
        ``C_Q(t) = α_t²Σ_Q + σ_t²I``. Requires a Gaussian :attr:`target`. A :class:`~closed_form.CodiagonalField`
        in the eigenbasis of ``Σ_Q``, so the laws take their per-direction route when the start is diagonal there
        (``N(0, I)``, ``Q_T``)."""
        target = self.target
        if not isinstance(target, Gaussian):
            raise NoClosedFormError("the target score is affine in x only when the target is Gaussian.")
        return _diffused_precision_field(target, 1.0, schedule)

    # ------------------------------------------------------------------ exact sampling of Q
    def _rejection_envelope(self):
        r"""Mixture envelope ``E ≥ Π p_i^{w_i}`` for one negative-weight mixture source ``p_0`` with weight ``-1``.

        For a numerator tuple of Gaussian factors whose components also appear in ``p_0`` (same mean and
        covariance, base weights ``ρ_c``; ``m`` distinct ones), AM–GM gives
        ``p_0 ≥ Σ_{c} ρ_c N_c ≥ m Π_c (ρ_c N_c)^{1/m}``, so each numerator term over ``p_0`` is bounded by a Gaussian
        power product. Returns ``(log_Z_E, GaussianMixture)`` or ``None`` when the construction does not apply.
        """
        neg = [i for i, wi in enumerate(self.weights) if wi < 0]
        if len(neg) != 1 or self.weights[neg[0]] != -1.0:
            return None
        base = self._comps[neg[0]]
        factors = []
        for i, (wi, c) in enumerate(zip(self.weights, self._comps)):
            if wi <= 0:
                continue
            if len(c.weights) > 1 and not _is_nonneg_integer(wi):
                return None
            factors.extend([(1.0, c)] * int(wi) if len(c.weights) > 1 else [(wi, c)])

        def base_index(mean, cov):
            for k in range(len(base.weights)):
                if base.weights[k] > 0 and np.array_equal(base.means[k], mean) and np.array_equal(base.covs[k], cov):
                    return k
            return None

        logw, means, covs = [], [], []
        for choice in itertools.product(*[range(len(c.weights)) for _, c in factors]):
            pis = [c.weights[k] for (_, c), k in zip(factors, choice)]
            if min(pis) == 0:
                continue
            fm = [c.means[k] for (_, c), k in zip(factors, choice)]
            fc = [c.covs[k] for (_, c), k in zip(factors, choice)]
            matched = sorted({base_index(m, c) for m, c in zip(fm, fc)} - {None})
            if not matched:
                return None
            m = len(matched)
            r = gaussian_power_product(
                [e for e, _ in factors] + [-1.0 / m] * m,
                fm + [base.means[k] for k in matched],
                fc + [base.covs[k] for k in matched],
            )
            if r.mean is None:
                return None
            rho = base.weights[matched]
            logw.append(r.log_const + float(np.sum(np.log(pis))) - math.log(m) - float(np.sum(np.log(rho))) / m)
            means.append(r.mean)
            covs.append(r.cov)
        logw = np.asarray(logw)
        log_z = float(np.logaddexp.reduce(logw))
        return log_z, GaussianMixture(np.exp(logw - log_z), np.asarray(means), np.asarray(covs))

    def sample_target(self, key, n: int, *, oversample: int = 50) -> TargetSample:
        r"""``n`` draws from ``Q``.

        * closed-form target: exact draws;
        * one negative-weight mixture source with weight −1 whose components are shared with the numerator
          sources (the paper's GMM settings): exact rejection sampling under the AM–GM envelope of
          :meth:`_rejection_envelope`, which bounds the density ratio provably;
        * otherwise: importance resampling from the normalized numerator product mixture with ``oversample · n``
          proposals; approximate, with its effective sample size reported, and an
          :class:`ImportanceResamplingWarning` when that is below :data:`POOR_ESS_FRACTION` ``· n``.
        """
        n = int(n)
        if self._product is not None:
            return TargetSample(self.target.sample(key, n), "closed_form")
        env = self._rejection_envelope()
        logq = self.target_logpdf_unnormalized
        if env is not None:
            log_z_env, env_mix = env
            log_z_env = jnp.asarray(log_z_env, dtype=jnp.float64)
            accepted, n_accepted, n_drawn, batch = [], 0, 0, max(4 * n, 1024)
            while n_accepted < n:
                key, x, log_u = _envelope_draws(env_mix, key, batch)
                accept = _accepted(env_mix, log_z_env, x, logq(x), log_u)
                accepted.append(np.asarray(x)[np.asarray(accept)])
                n_accepted += accepted[-1].shape[0]
                n_drawn += batch
                if n_drawn >= _MAX_REJECTION_DRAWS and n_accepted < n:
                    raise CatcompError(
                        f"rejection sampling accepted {n_accepted} of {n_drawn} proposals, short of n={n}; the "
                        "envelope bounds Q provably, so this means the target's density is numerically degenerate "
                        "here (non-finite or vanishing log-ratios). Check the sources."
                    )
                rate = max(n_accepted / n_drawn, 1e-4)
                batch = int(min(max(1.2 * (n - n_accepted) / rate, 1024), 2_000_000))
            xs = jnp.asarray(np.concatenate(accepted)[:n], dtype=jnp.float64)
            total = n_accepted
            return TargetSample(xs, "rejection", acceptance_rate=total / n_drawn)
        numer = self._product_mixture(positive_only=True)
        if numer is None:
            raise NoClosedFormError(
                "sample_target needs a closed-form numerator: mixture sources with positive weight must have "
                "integer weights."
            )
        proposal = GaussianMixture(*numer[:3])
        x, k_r = _proposals(proposal, key, int(oversample) * n)
        samples, ess = _importance_resample(proposal, x, logq(x), k_r, n)
        ess = float(ess)
        if ess < POOR_ESS_FRACTION * n:
            warnings.warn(
                f"importance resampling returned {n} draws of the target whose importance weights have an effective "
                f"sample size of only {ess:.0f} (from {oversample * n} proposals): the draws repeat about "
                f"{n / ess:.0f} times on average and carry the information of ~{ess:.0f} independent ones. Raise "
                "oversample, or check TargetSample.ess before using them.",
                ImportanceResamplingWarning, stacklevel=2)
        return TargetSample(samples, "importance_resampling", ess=ess)

    def __repr__(self):
        kinds = ", ".join(type(s).__name__ for s in self.sources)
        return f"Composition([{kinds}], weights={self.weights.tolist()}, d={self.dim})"


def compose(sources, weights) -> Composition:
    r"""Compose sources geometrically: ``Q ∝ Π_i P_i^{w_i}``. See :class:`Composition`."""
    return Composition(sources, weights)


def start_law(composition, schedule, which: str, eps: float = 1e-5):
    r"""The samplers' start law at their grid's first time ``t_0 = T − eps`` (:func:`reverse_time_grid`), exact.

    ``which``: ``"standard"`` → ``N(0, I)`` (the paper's); ``"path"`` → ``π_{t_0}``, the normalized geometric path
    (Gaussian sources); ``"target"`` → ``Q_{t_0}``, the diffused target (when the target is closed form).
    """
    t0 = float(reverse_time_grid(schedule, 1, eps)[0])
    if which == "standard":
        return Gaussian.standard(composition.dim)
    if which == "path":
        law = composition.path_composition(schedule, t0).target
    elif which == "target":
        law = composition.noised_target(schedule, t0)
    else:
        raise CatcompError(f"unknown start {which!r}; valid names are 'standard', 'path', 'target'.")
    if not isinstance(law, (Gaussian, GaussianMixture)):
        raise NoClosedFormError(f"the {which} start has no closed form here.")
    return law


def geometric_field(sources, weights, schedule):
    r"""``Σ_i w_i ∇log q^i_t`` for Gaussian ``sources`` as an affine field (see :meth:`Composition.naive_field`),
    defined whether or not ``Π_i P_i^{w_i}`` is normalizable: the naive composed score of misspecified sources whose
    composition is improper still drives a sampler."""
    if not all(isinstance(s, Gaussian) for s in sources):
        raise NoClosedFormError("the geometric field is affine in x only for Gaussian sources.")
    if len(sources) != len(weights):
        raise ShapeMismatchError(f"got {len(sources)} sources and {len(weights)} weights; pass one weight per source.")
    return add_fields(*(_diffused_precision_field(s, w, schedule) for s, w in zip(sources, weights)))


def _diffused_precision_field(g: Gaussian, weight, schedule):
    r"""``t ↦ w·(C(t)⁻¹, C(t)⁻¹α_tμ)``, ``C(t) = α_t²Σ + σ_t²I``, as a :class:`~closed_form.CodiagonalField` in the
    eigenbasis ``U`` of ``Σ``: per direction ``a(t) = w/(α_t²λ + σ_t²)``, ``c(t) = a(t)·α_t·(Uᵀμ)`` — the one-source
    case of :func:`~closed_form.fields.codiagonal_field`'s coefficients."""
    # A concrete weight as a NumPy float64: a Python float (weakly typed) and a NumPy one would compile separately.
    weight = np.float64(weight) if is_concrete(weight) else weight
    lam, rotated_mean, w, vecs = _eigen_terms(g.cov, g.mean, weight)
    return CodiagonalField(vecs, _WeightedPrecisions(lam, rotated_mean, w, schedule))
