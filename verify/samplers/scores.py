r"""Score functions for the samplers, and adapters that build them.

A *score function* is any callable ``score(x, t) -> array`` with ``x`` of shape ``(..., d)`` (vectorized over all
leading axes: swarms, particles) and ``t`` a scalar that may be traced by JAX; it returns ``∇_x log q_t(x)`` with the
shape of ``x``. The samplers take a tuple of them, one per source, and the composition weights.

The exact scores here are JAX pytrees (their arrays are leaves, the schedule is static), so the samplers can pass
them through ``jax.jit`` as arguments and reuse compiled code across calls. They diagonalize each covariance once,
``Σ = U diag(λ) Uᵀ``, so that the diffused covariance ``α_t²Σ + σ_t²I = U diag(α_t²λ + σ_t²) Uᵀ`` needs no
per-step factorization:

.. math:: ∇\log q_t(x) = -U \operatorname{diag}\big(1/(α_t^2 λ + σ_t^2)\big) U^\top (x - α_t μ),
          \qquad \log q_t(x) = -\tfrac12 \sum_j \Big(\frac{y_j^2}{α_t^2λ_j + σ_t^2} + \log(2π(α_t^2λ_j + σ_t^2))\Big),

with ``y = Uᵀ(x − α_t μ)``; diagonal covariances skip the rotation. Mixtures apply the same per component and
combine them with responsibilities computed by log-sum-exp. Each is tested equal, to ``rtol 1e-10``,
to :class:`closed_form.Gaussian` / :class:`closed_form.GaussianMixture` ``.noised(schedule, t).score`` and to
:meth:`closed_form.Composition.path_logpdf_unnormalized` (``tests/test_scores.py``).
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from closed_form import Composition, Gaussian, GaussianMixture
from closed_form.errors import CatcompError, ShapeMismatchError
from closed_form.schedules import diffused_variance

LOG_2PI = float(np.log(2.0 * np.pi))


def _eigh(cov):
    """``(λ, U, diagonal)`` of a symmetric covariance (NumPy, concrete)."""
    c = np.asarray(cov, dtype=np.float64)
    if np.count_nonzero(c - np.diag(np.diagonal(c))) == 0:
        return np.diagonal(c).copy(), np.eye(c.shape[0]), True
    lam, u = np.linalg.eigh(0.5 * (c + c.T))
    return lam, u, False


@partial(jax.tree_util.register_dataclass, data_fields=["mean", "eigvals", "eigvecs"],
         meta_fields=["schedule", "diagonal"])
@dataclasses.dataclass(frozen=True)
class GaussianScore:
    r"""Exact score of a Gaussian source ``N(μ, Σ)`` diffused by ``schedule``: ``q_t = N(α_t μ, α_t²Σ + σ_t²I)``.

    Build it with :meth:`from_gaussian`. ``score(x, t)`` returns ``−(α_t²Σ + σ_t²I)⁻¹(x − α_t μ)``;
    :meth:`log_density` returns ``log q_t(x)`` and :meth:`affine` the pair ``(A_t, b_t)`` with
    ``score = −A_t x + b_t``.
    """

    mean: jax.Array  # (d,)
    eigvals: jax.Array  # (d,)  eigenvalues λ of Σ
    eigvecs: jax.Array  # (d, d) columns: eigenvectors U (identity when Σ is diagonal)
    schedule: object
    diagonal: bool

    @classmethod
    def from_gaussian(cls, gaussian: Gaussian, schedule) -> "GaussianScore":
        lam, u, diagonal = _eigh(gaussian.cov)
        return cls(jnp.asarray(gaussian.mean, dtype=jnp.float64), jnp.asarray(lam, dtype=jnp.float64),
                   jnp.asarray(u, dtype=jnp.float64), schedule, diagonal)

    @property
    def dim(self) -> int:
        return self.mean.shape[-1]

    def _variances(self, t):
        return self.schedule.alpha(t), diffused_variance(self.schedule, self.eigvals, t)

    def _rotate(self, x):
        return x if self.diagonal else x @ self.eigvecs

    def _unrotate(self, y):
        return y if self.diagonal else y @ self.eigvecs.T

    def __call__(self, x, t):
        return _gaussian_score(self, x, t)

    def log_density(self, x, t):
        """``log q_t(x)``, shape ``x.shape[:-1]``."""
        return _gaussian_log_density(self, x, t)

    def affine(self, t):
        """``(A_t, b_t)`` with ``score(x, t) = −A_t x + b_t``: ``A_t = U diag(1/v) Uᵀ``, ``b_t = A_t α_t μ``."""
        return _gaussian_affine(self, t)


# The methods' numeric cores, jitted at module level with the score object as a pytree argument: called outside a
# trace they compile one program per shape (instead of one per operation); inside a trace they inline.
@jax.jit
def _gaussian_score(score, x, t):
    a, v = score._variances(t)
    return -score._unrotate(score._rotate(x - a * score.mean) / v)


@jax.jit
def _gaussian_log_density(score, x, t):
    a, v = score._variances(t)
    y = score._rotate(x - a * score.mean)
    return -0.5 * (jnp.sum(y**2 / v, axis=-1) + jnp.sum(jnp.log(v)) + score.dim * LOG_2PI)


@jax.jit
def _gaussian_affine(score, t):
    a, v = score._variances(t)
    prec = (score.eigvecs / v) @ score.eigvecs.T
    return prec, prec @ (a * score.mean)


@partial(jax.tree_util.register_dataclass, data_fields=["log_weights", "means", "eigvals", "eigvecs"],
         meta_fields=["schedule", "diagonal"])
@dataclasses.dataclass(frozen=True)
class MixtureScore:
    r"""Exact score of a Gaussian-mixture source ``Σ_k π_k N(μ_k, Σ_k)`` diffused by ``schedule``.

    .. math:: ∇\log q_t(x) = \sum_k r_k(x)\,s_k(x),\qquad r_k = \operatorname{softmax}_k\big(\log π_k + \log
              N(x; α_tμ_k, α_t^2Σ_k + σ_t^2 I)\big),

    with ``s_k`` the component scores of :class:`GaussianScore`. Zero-weight components drop out (``log 0 = −∞``).
    """

    log_weights: jax.Array  # (K,)
    means: jax.Array  # (K, d)
    eigvals: jax.Array  # (K, d)
    eigvecs: jax.Array  # (K, d, d)
    schedule: object
    diagonal: bool

    @classmethod
    def from_mixture(cls, mixture: GaussianMixture, schedule) -> "MixtureScore":
        parts = [_eigh(c) for c in np.asarray(mixture.covs)]
        diagonal = all(p[2] for p in parts)
        with np.errstate(divide="ignore"):
            log_w = np.log(np.asarray(mixture.weights, dtype=np.float64))
        f64 = jnp.float64
        return cls(jnp.asarray(log_w, dtype=f64), jnp.asarray(mixture.means, dtype=f64),
                   jnp.asarray(np.stack([p[0] for p in parts]), dtype=f64),
                   jnp.asarray(np.stack([p[1] for p in parts]), dtype=f64), schedule, diagonal)

    @property
    def dim(self) -> int:
        return self.means.shape[-1]

    def _terms(self, x, t):
        """Per component: ``log π_k + log N_k(x)`` (shape ``(..., K)``) and ``y_k / v_k`` in the eigenbasis."""
        a = self.schedule.alpha(t)
        v = diffused_variance(self.schedule, self.eigvals, t)  # (K, d)
        diff = x[..., None, :] - a * self.means  # (..., K, d)
        y = diff if self.diagonal else jnp.einsum("...kd,kde->...ke", diff, self.eigvecs)
        log_joint = self.log_weights - 0.5 * (
            jnp.sum(y**2 / v, axis=-1) + jnp.sum(jnp.log(v), axis=-1) + self.dim * LOG_2PI
        )
        return log_joint, y / v

    def __call__(self, x, t):
        return _mixture_score(self, x, t)

    def log_density(self, x, t):
        """``log q_t(x)`` by log-sum-exp, shape ``x.shape[:-1]``."""
        return _mixture_log_density(self, x, t)


@jax.jit
def _mixture_score(score, x, t):
    log_joint, yv = score._terms(x, t)
    r = jax.nn.softmax(log_joint, axis=-1)  # (..., K)
    comp = yv if score.diagonal else jnp.einsum("...ke,kde->...kd", yv, score.eigvecs)
    return -jnp.sum(r[..., None] * comp, axis=-2)


@jax.jit
def _mixture_log_density(score, x, t):
    log_joint, _ = score._terms(x, t)
    return logsumexp(log_joint, axis=-1)


def exact_score(source, schedule):
    """The exact score function of one :class:`Gaussian` or :class:`GaussianMixture` source diffused by ``schedule``."""
    if isinstance(source, Gaussian):
        return GaussianScore.from_gaussian(source, schedule)
    if isinstance(source, GaussianMixture):
        return MixtureScore.from_mixture(source, schedule)
    raise TypeError(f"exact scores exist for Gaussian and GaussianMixture sources, got {type(source).__name__}.")


def source_scores(composition: Composition, schedule) -> tuple:
    """The exact score functions ``s_i(x, t) = ∇log q^i_t(x)`` of the composition's sources, in order."""
    return tuple(exact_score(s, schedule) for s in composition.sources)


def check_scores_and_weights(scores, weights) -> tuple[tuple, tuple[float, ...]]:
    """Validate a score tuple against composition weights; return both as tuples (weights as Python floats).

    Raises
    ------
    ShapeMismatchError
        When the counts differ or there are none.
    NonFiniteInputError
        For NaN or infinite weights.
    CatcompError
        When ``scores`` is a :class:`closed_form.Composition` (or a setting) instead of its score functions.
    """
    from closed_form.validation import check_weights_for

    if isinstance(scores, Composition) or hasattr(scores, "composition"):
        raise CatcompError(
            f"scores must be score functions, one per source, not a {type(scores).__name__}; for a composition pass "
            "scores=source_scores(composition, schedule) and weights=composition.weights (exact scores), or "
            "network_scores(...) for learned ones."
        )
    scores = tuple(scores) if isinstance(scores, (tuple, list)) else (scores,)
    weights = check_weights_for(scores, weights, "score function")
    for s in scores:
        if not callable(s):
            raise TypeError(f"every score must be callable as score(x, t), got {type(s).__name__}.")
    return scores, weights


def composed_score(scores, weights):
    """``S(x, t) = Σ_i w_i s_i(x, t)``, the naive composed score (the score of the geometric path ``π_t``)."""
    scores, weights = check_scores_and_weights(scores, weights)
    return jax.tree_util.Partial(_composed_score, scores, weights)


def _composed_score(scores, weights, x, t):
    return sum(w * s(x, t) for w, s in zip(weights, scores) if w != 0.0)


def path_log_density(scores, weights):
    """``log γ_t(x) = Σ_i w_i log q^i_t(x)``, the unnormalized log density of ``π_t`` (for MALA correctors).

    Needs score objects with a ``log_density(x, t)`` method (the exact ones here have it).
    """
    scores, weights = check_scores_and_weights(scores, weights)
    for s in scores:
        if not hasattr(s, "log_density"):
            raise CatcompError(
                f"{type(s).__name__} has no log_density(x, t); the composed log density needs one for every source "
                "(exact scores from source_scores() have it)."
            )
    return jax.tree_util.Partial(_path_log_density, scores, weights)


def _path_log_density(scores, weights, x, t):
    return sum(w * s.log_density(x, t) for w, s in zip(weights, scores) if w != 0.0)


def infer_dim(scores) -> int | None:
    """The dimension declared by the score objects (``.dim``), or ``None`` when none declares one."""
    dims = {int(s.dim) for s in scores if hasattr(s, "dim")}
    if len(dims) > 1:
        raise ShapeMismatchError(f"the score functions declare different dimensions {sorted(dims)}; all must agree.")
    return dims.pop() if dims else None
