r"""Multivariate Gaussians with full covariance, as immutable JAX pytrees.

.. math:: \log N(x; μ, Σ) = -\tfrac12 (x-μ)^\top Σ^{-1} (x-μ) - \tfrac12 \log\lvert 2πΣ \rvert,
          \qquad ∇_x \log N(x; μ, Σ) = -Σ^{-1}(x - μ).

All linear algebra goes through the lower Cholesky factor ``L`` (``Σ = L Lᵀ``).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular

from closed_form.errors import ShapeMismatchError
from closed_form.pytree import FrozenPytree
from closed_form.schedules import diffused_covariance
from closed_form.validation import check_covariance, check_finite, check_points, check_time, is_concrete

LOG_2PI = float(np.log(2.0 * np.pi))


def _flatten_points(x, dim):
    """Reshape ``(..., dim)`` to ``(n, dim)`` and return the batch shape to restore."""
    x = jnp.asarray(x)
    batch = x.shape[:-1]
    return x.reshape((-1, dim)), batch


def _points(x):
    """``x`` as an argument of a jitted method: arrays pass as they are, nested sequences become one NumPy array."""
    return np.asarray(x) if isinstance(x, (list, tuple)) else x


# The methods' arithmetic runs as one jitted program per shape (the Gaussian is a pytree argument), not as a chain of
# eager single operations, each compiled for every new shape; the operations, and hence the values, are the same.
# Inputs are validated outside, on concrete values.
@jax.jit
def _symmetrized_with_cholesky(cov):
    cov = 0.5 * (cov + cov.T)
    return cov, jnp.linalg.cholesky(cov)


@jax.jit
def _logpdf(g, x):
    flat, batch = _flatten_points(x, g.dim)
    z = solve_triangular(g.chol, (flat - g.mean).T, lower=True)
    maha = jnp.sum(z**2, axis=0)
    out = -0.5 * maha - 0.5 * g.logdet_cov - 0.5 * g.dim * LOG_2PI
    return out.reshape(batch)


@jax.jit
def _score(g, x):
    flat, batch = _flatten_points(x, g.dim)
    s = -cho_solve((g.chol, True), (flat - g.mean).T).T
    return s.reshape(batch + (g.dim,))


@partial(jax.jit, static_argnums=2)
def _sample(g, key, shape):
    z = jax.random.normal(key, shape + (g.dim,), dtype=jnp.float64)
    return g.mean + z @ g.chol.T


@jax.jit
def _precision(chol):
    return cho_solve((chol, True), jnp.eye(chol.shape[-1], dtype=chol.dtype))


@jax.jit
def _logdet(chol):
    return 2.0 * jnp.sum(jnp.log(jnp.diag(chol)))


@jax.jit
def _inverse_of_symmetrized(p):
    return jnp.linalg.inv(0.5 * (p + p.T))


def _noised_op_by_op(g, schedule, t):
    return Gaussian._unchecked(schedule.alpha(t) * g.mean, diffused_covariance(schedule, g.cov, t))


_noised_jit = jax.jit(_noised_op_by_op, static_argnums=1)


def _hashable(schedule) -> bool:
    try:
        hash(schedule)
    except TypeError:
        return False
    return True


def _noised(g, schedule, t):
    """The schedule is a static argument (schedules are frozen dataclasses); an unhashable one runs op by op."""
    return (_noised_jit if _hashable(schedule) else _noised_op_by_op)(g, schedule, t)


class Gaussian(FrozenPytree):
    r"""The Gaussian ``N(mean, cov)`` in ``d`` dimensions.

    Parameters
    ----------
    mean : array_like, shape (d,)
    cov : array_like, shape (d, d)
        Symmetric positive definite.

    Raises
    ------
    ShapeMismatchError, NonFiniteInputError, NotPositiveDefiniteError
        For a mean that is not a vector, a covariance of the wrong shape, NaN/inf entries, or a covariance that is not
        symmetric positive definite.
    """

    def __init__(self, mean, cov):
        if np.ndim(mean) != 1:
            raise ShapeMismatchError(f"mean has shape {np.shape(mean)}; expected a vector of shape (d,).")
        dim = int(np.shape(mean)[0])
        check_finite(mean, "mean")
        check_covariance(cov, dim, "cov")
        mean = jnp.asarray(mean, dtype=jnp.float64)
        cov = jnp.asarray(cov, dtype=jnp.float64)
        self._set(mean, *_symmetrized_with_cholesky(cov))

    # Pytree leaves (:class:`~closed_form.pytree.FrozenPytree`): rebuilding from them skips validation.
    _leaves = ("mean", "cov", "chol")

    @classmethod
    def _unchecked(cls, mean, cov):
        """Build without validation (for covariances PD by construction, possibly traced)."""
        return cls.tree_unflatten(None, (mean, cov, jnp.linalg.cholesky(cov)))

    # -- alternate constructors --
    @classmethod
    def standard(cls, dim: int) -> "Gaussian":
        """``N(0, I_d)``."""
        return cls(np.zeros(dim), np.eye(dim))

    @classmethod
    def isotropic(cls, mean, variance: float) -> "Gaussian":
        """``N(mean, variance · I)``."""
        mean = np.asarray(mean, dtype=np.float64)
        return cls(mean, variance * np.eye(mean.shape[0]))

    @classmethod
    def from_precision(cls, mean, precision) -> "Gaussian":
        """``N(mean, precision⁻¹)``; the precision must be symmetric positive definite."""
        dim = int(np.shape(mean)[0])
        check_covariance(precision, dim, "precision")
        return cls(mean, _inverse_of_symmetrized(jnp.asarray(precision, dtype=jnp.float64)))

    # -- properties --
    @property
    def dim(self) -> int:
        return self.mean.shape[-1]

    @property
    def precision(self):
        """``Σ⁻¹`` via the Cholesky factor."""
        return _precision(self.chol)

    @property
    def logdet_cov(self):
        """``log |Σ| = 2 Σ_k log L_kk``."""
        return _logdet(self.chol)

    # -- densities --
    def logpdf(self, x):
        r"""``log N(x; μ, Σ)`` for ``x`` of shape ``(..., d)``; returns shape ``(...)``."""
        check_points(x, self.dim)
        return _logpdf(self, _points(x))

    def score(self, x):
        r"""``∇_x log N(x; μ, Σ) = −Σ⁻¹(x − μ)``, shape ``(..., d)``."""
        check_points(x, self.dim)
        return _score(self, _points(x))

    def sample(self, key, n):
        """``n`` draws ``μ + L z``, ``z ~ N(0, I)``; ``n`` an int or a shape; returns ``(*n, d)``."""
        # One jitted program per shape (the fused add may round the last bit unlike op-by-op code; every route to
        # a draw goes through this one function, so equal keys still give equal draws).
        shape = (int(n),) if isinstance(n, (int, np.integer)) else tuple(int(k) for k in n)
        return _sample(self, key, shape)

    def noised(self, schedule, t) -> "Gaussian":
        r"""The law of ``α_t x₀ + σ_t ε`` for ``x₀ ~ N(μ, Σ)``: ``N(α_t μ, α_t² Σ + σ_t² I)``.

        ``t`` may be a traced scalar.
        """
        check_time(schedule, t)
        return _noised(self, schedule, t)

    def __repr__(self):
        if is_concrete(self.mean, self.cov):
            return f"Gaussian(mean={np.asarray(self.mean).tolist()}, cov={np.asarray(self.cov).tolist()})"
        return "Gaussian(<traced>)"
