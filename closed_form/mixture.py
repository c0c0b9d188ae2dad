r"""Gaussian mixtures with per-component full covariances, as immutable JAX pytrees.

.. math:: p(x) = \sum_k π_k N(x; μ_k, Σ_k), \qquad
          ∇\log p(x) = \sum_k r_k(x)\,\big(-Σ_k^{-1}(x - μ_k)\big),\quad
          r_k(x) = \operatorname{softmax}_k\big(\log π_k + \log N(x; μ_k, Σ_k)\big).

Everything is computed in log space (log-sum-exp), so components far apart (``1e3``) and small noise levels stay
finite. Diffusing a mixture diffuses each component and keeps the weights.

Linear algebra runs one component at a time (:func:`_per_component`), never as one batched LAPACK call: jaxlib 0.10's
CPU LAPACK kernels split a batch over XLA's intra-op thread pool and block until the pieces finish, so as many
concurrent batched calls as the pool has threads (two on a 2-core machine; async dispatch keeps several eager calls in
flight) each hold a pool thread while waiting for work queued behind them, and the process deadlocks
(``tests/README.md``, "The hang guard, and the deadlock it once caught").
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular
from jax.scipy.special import logsumexp

from closed_form.errors import InvalidWeightsError, ShapeMismatchError
from closed_form.gaussian import LOG_2PI, Gaussian, _flatten_points, _hashable, _points
from closed_form.pytree import FrozenPytree
from closed_form.schedules import diffused_covariance
from closed_form.validation import check_covariance, check_finite, check_points, check_time, is_concrete


def _per_component(fn, *stacked):
    """``fn`` applied to the ``k``-th slice of each of ``stacked`` for every component ``k``, results stacked.

    A Python loop of unbatched calls rather than one batched call: an unbatched LAPACK kernel runs on its calling
    thread, while a batched one fans out over the intra-op pool and can deadlock it (module docstring)."""
    return jnp.stack([fn(*(a[k] for a in stacked)) for k in range(stacked[0].shape[0])])


def _cholesky(covs):
    return _per_component(jnp.linalg.cholesky, covs)


# As for closed_form.gaussian: the methods' arithmetic runs as one jitted program per shape (the mixture a pytree
# argument) instead of a chain of eager single operations; same operations, same values; inputs validated outside.
@jax.jit
def _symmetrized_with_cholesky(covs):
    covs = 0.5 * (covs + jnp.swapaxes(covs, -1, -2))
    return covs, _cholesky(covs)


@jax.jit
def _responsibilities(mix, x):
    flat, batch = _flatten_points(x, mix.dim)
    log_joint, _ = mix._component_terms(flat)
    r = jax.nn.softmax(log_joint, axis=0)
    return r.T.reshape(batch + (mix.n_components,))


@jax.jit
def _logpdf(mix, x):
    flat, batch = _flatten_points(x, mix.dim)
    log_joint, _ = mix._component_terms(flat)
    return logsumexp(log_joint, axis=0).reshape(batch)


@jax.jit
def _score(mix, x):
    flat, batch = _flatten_points(x, mix.dim)
    log_joint, diff_t = mix._component_terms(flat)
    r = jax.nn.softmax(log_joint, axis=0)  # (K, n)
    comp_scores = -_per_component(lambda c, r: cho_solve((c, True), r), mix.chols, diff_t)  # (K, d, n)
    s = jnp.einsum("kn,kdn->nd", r, comp_scores)
    return s.reshape(batch + (mix.dim,))


@partial(jax.jit, static_argnums=2)
def _sample(mix, key, shape):
    k_comp, k_norm = jax.random.split(key)
    idx = jax.random.categorical(k_comp, jnp.log(mix.weights), shape=shape)
    z = jax.random.normal(k_norm, shape + (mix.dim,), dtype=jnp.float64)
    return mix.means[idx] + jnp.einsum("...ij,...j->...i", mix.chols[idx], z)


@jax.jit
def _one_component(mean, cov, chol):
    return jnp.ones(1, dtype=mean.dtype), mean[None], cov[None], chol[None]


@jax.jit
def _moments(weights, means, covs):
    m = weights @ means
    second = jnp.einsum("k,kij->ij", weights, covs + jnp.einsum("ki,kj->kij", means, means))
    return m, second - jnp.outer(m, m)


def _noised_op_by_op(mix, schedule, t):
    covs = diffused_covariance(schedule, mix.covs, t)
    return GaussianMixture.tree_unflatten(None, (mix.weights, schedule.alpha(t) * mix.means, covs, _cholesky(covs)))


_noised_jit = jax.jit(_noised_op_by_op, static_argnums=1)


class GaussianMixture(FrozenPytree):
    r"""``Σ_k π_k N(μ_k, Σ_k)``.

    Parameters
    ----------
    weights : array_like, shape (K,)
        Non-negative, summing to one (to 1e-10). Zero weights are allowed and contribute nothing.
    means : array_like, shape (K, d)
    covs : array_like, shape (K, d, d)
        Each symmetric positive definite.

    Raises
    ------
    InvalidWeightsError, ShapeMismatchError, NonFiniteInputError, NotPositiveDefiniteError
    """

    def __init__(self, weights, means, covs):
        if np.ndim(weights) != 1:
            raise ShapeMismatchError(f"weights has shape {np.shape(weights)}; expected (K,).")
        k = int(np.shape(weights)[0])
        if k == 0:
            raise ShapeMismatchError("a mixture needs at least one component (weights has length 0).")
        if np.ndim(means) != 2 or np.shape(means)[0] != k:
            raise ShapeMismatchError(f"means has shape {np.shape(means)}; expected ({k}, d) to match {k} weights.")
        dim = int(np.shape(means)[1])
        if np.shape(covs) != (k, dim, dim):
            raise ShapeMismatchError(f"covs has shape {np.shape(covs)}; expected ({k}, {dim}, {dim}).")
        check_finite(weights, "weights")
        check_finite(means, "means")
        w = np.asarray(weights, dtype=np.float64)
        if np.any(w < 0):
            raise InvalidWeightsError(f"mixture weights {w.tolist()} include negative values; all must be ≥ 0.")
        if abs(w.sum() - 1.0) > 1e-10:
            raise InvalidWeightsError(f"mixture weights sum to {w.sum():.12g}; they must sum to 1.")
        for j in range(k):
            check_covariance(np.asarray(covs)[j], dim, f"covs[{j}]")
        covs = jnp.asarray(covs, dtype=jnp.float64)
        self._set(jnp.asarray(w, dtype=jnp.float64), jnp.asarray(means, dtype=jnp.float64),
                  *_symmetrized_with_cholesky(covs))

    # Pytree leaves (:class:`~closed_form.pytree.FrozenPytree`): rebuilding from them skips validation.
    _leaves = ("weights", "means", "covs", "chols")

    @classmethod
    def isotropic(cls, weights, means, std: float) -> "GaussianMixture":
        """Components ``N(μ_k, std² I)`` sharing one standard deviation."""
        means = np.asarray(means, dtype=np.float64)
        k, d = means.shape
        return cls(weights, means, np.broadcast_to(std**2 * np.eye(d), (k, d, d)))

    @classmethod
    def from_gaussian(cls, g: Gaussian) -> "GaussianMixture":
        """The one-component mixture equal to ``g``."""
        return cls.tree_unflatten(None, _one_component(g.mean, g.cov, g.chol))

    @property
    def dim(self) -> int:
        return self.means.shape[-1]

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    def component(self, k: int) -> Gaussian:
        """Component ``k`` as a :class:`Gaussian`."""
        return Gaussian.tree_unflatten(None, (self.means[k], self.covs[k], self.chols[k]))

    @property
    def mean(self):
        """``Σ_k π_k μ_k``."""
        return _moments(self.weights, self.means, self.covs)[0]

    @property
    def cov(self):
        """``Σ_k π_k (Σ_k + μ_k μ_kᵀ) − μ μᵀ``."""
        return _moments(self.weights, self.means, self.covs)[1]

    def _component_terms(self, flat):
        """Per-component ``log π_k + log N(x; μ_k, Σ_k)`` and ``Σ_k⁻¹(x − μ_k)`` for points ``flat`` (n, d)."""
        diff = flat[None, :, :] - self.means[:, None, :]  # (K, n, d)
        diff_t = jnp.swapaxes(diff, -1, -2)  # (K, d, n)
        z = _per_component(lambda c, r: solve_triangular(c, r, lower=True), self.chols, diff_t)
        maha = jnp.sum(z**2, axis=-2)  # (K, n)
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(self.chols, axis1=-2, axis2=-1)), axis=-1)  # (K,)
        log_comp = -0.5 * maha - 0.5 * logdet[:, None] - 0.5 * self.dim * LOG_2PI
        # log(0) = -inf for zero-weight components: they drop out of logsumexp and softmax.
        log_joint = jnp.log(self.weights)[:, None] + log_comp
        return log_joint, diff_t

    def responsibilities(self, x):
        """Posterior component probabilities ``r_k(x)``, shape ``(..., K)``."""
        check_points(x, self.dim)
        return _responsibilities(self, _points(x))

    def logpdf(self, x):
        """``log Σ_k π_k N(x; μ_k, Σ_k)`` by log-sum-exp; shape ``(...)``."""
        check_points(x, self.dim)
        return _logpdf(self, _points(x))

    def score(self, x):
        r"""``Σ_k r_k(x) (−Σ_k⁻¹(x − μ_k))``; shape ``(..., d)``."""
        check_points(x, self.dim)
        return _score(self, _points(x))

    def sample(self, key, n):
        """``n`` draws (an int or a shape): a component by its weight, then a Gaussian draw; ``(*n, d)``."""
        # One jitted program per shape (the fused arithmetic may round the last bit unlike op-by-op code; every route
        # to a draw goes through this one function, so equal keys still give equal draws).
        shape = (int(n),) if isinstance(n, (int, np.integer)) else tuple(int(k) for k in n)
        return _sample(self, key, shape)

    def noised(self, schedule, t) -> "GaussianMixture":
        r"""Each component diffused: ``Σ_k π_k N(α_t μ_k, α_t² Σ_k + σ_t² I)``."""
        check_time(schedule, t)
        return (_noised_jit if _hashable(schedule) else _noised_op_by_op)(self, schedule, t)

    def __repr__(self):
        if is_concrete(self.weights):
            return f"GaussianMixture(K={self.n_components}, d={self.dim}, weights={np.asarray(self.weights).round(4).tolist()})"
        return "GaussianMixture(<traced>)"
