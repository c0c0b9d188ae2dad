r"""Two-sample distances for comparing sampler output with exact target samples.

* :func:`sliced_w2` — sliced 2-Wasserstein distance: the root mean over random unit directions ``θ`` of the squared
  1-D ``W₂`` between the projections ``⟨θ, x⟩`` and ``⟨θ, y⟩``; in 1-D with equal sample sizes ``W₂²`` is the mean
  squared difference of the sorted samples (the optimal coupling is monotone).
* :func:`mmd2_unbiased` — the unbiased estimate of the squared maximum mean discrepancy with the Gaussian (RBF)
  kernel ``k(a, b) = exp(−‖a − b‖² / (2ℓ²))`` (Gretton et al. 2012, eq. 3):

  .. math:: \widehat{\mathrm{MMD}}^2_u = \frac{1}{n(n−1)}\sum_{i≠j} k(x_i, x_j) + \frac{1}{m(m−1)}\sum_{i≠j}
            k(y_i, y_j) − \frac{2}{nm}\sum_{i,j} k(x_i, y_j).

  Its expectation is ``MMD²`` (zero for equal laws), so it can be negative. ``ℓ`` defaults to the median heuristic:
  the median of the pairwise distances of the pooled sample (distinct pairs), as the paper's authors use.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from closed_form.errors import CatcompError, ShapeMismatchError
from closed_form.validation import check_finite


def _check_pair(x, y):
    if np.ndim(x) != 2 or np.ndim(y) != 2 or np.shape(x)[1] != np.shape(y)[1]:
        raise ShapeMismatchError(
            f"samples have shapes {np.shape(x)} and {np.shape(y)}; expected (n, d) and (m, d) with the same d."
        )
    check_finite(x, "x")
    check_finite(y, "y")


def sliced_w2(x, y, key, n_proj: int = 2000):
    """Sliced ``W₂`` between the empirical laws of ``x`` (n, d) and ``y`` (n, d) over ``n_proj`` random directions.

    Raises
    ------
    ShapeMismatchError
        For samples of different sizes or dimensions (equal sizes keep the 1-D coupling a sort).
    """
    _check_pair(x, y)
    if np.shape(x)[0] != np.shape(y)[0]:
        raise ShapeMismatchError(f"sliced_w2 needs equal sample sizes, got {np.shape(x)[0]} and {np.shape(y)[0]}.")
    return _sliced_w2(jnp.asarray(x, dtype=jnp.float64), jnp.asarray(y, dtype=jnp.float64), key, int(n_proj))


@jax.jit
def _proj_sq_w2(x, y, theta):
    px = jnp.sort(x @ theta, axis=0)
    py = jnp.sort(y @ theta, axis=0)
    return jnp.mean((px - py) ** 2, axis=0)


@partial(jax.jit, static_argnums=(1, 2))
def _directions(key, d, n_proj):
    """``n_proj`` uniformly random unit directions in ``R^d``, as the columns of a ``(d, n_proj)`` array."""
    theta = jax.random.normal(key, (d, n_proj), dtype=jnp.float64)
    return theta / jnp.linalg.norm(theta, axis=0, keepdims=True)


def _sliced_w2(x, y, key, n_proj):
    # Directions in one compiled program; slicing and the final mean in NumPy (no program per chunk shape).
    theta = np.asarray(_directions(key, int(x.shape[1]), n_proj))
    chunk = 250
    parts = [np.asarray(_proj_sq_w2(x, y, theta[:, i : i + chunk])) for i in range(0, n_proj, chunk)]
    return float(np.sqrt(np.mean(np.concatenate(parts))))


def median_heuristic(x, y) -> float:
    """Median of the pairwise Euclidean distances of the pooled sample (distinct pairs)."""
    z = np.concatenate([np.asarray(x), np.asarray(y)])
    sq = np.sum(z**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    iu = np.triu_indices(z.shape[0], k=1)
    return float(np.sqrt(np.median(d2[iu])))


@jax.jit
def _kernel_sum(a, b, gamma):
    sq = jnp.sum(a**2, 1)[:, None] + jnp.sum(b**2, 1)[None, :] - 2.0 * a @ b.T
    return jnp.sum(jnp.exp(-gamma * jnp.maximum(sq, 0.0)))


def mmd2_unbiased(x, y, bandwidth: float | None = None) -> float:
    """Unbiased RBF ``MMD²`` between samples ``x`` (n, d) and ``y`` (m, d), ``n, m ≥ 2`` (module doc).

    ``bandwidth`` is the kernel length ``ℓ``; ``None`` uses :func:`median_heuristic`.
    """
    _check_pair(x, y)
    n, m = np.shape(x)[0], np.shape(y)[0]
    if n < 2 or m < 2:
        raise ShapeMismatchError(f"mmd2_unbiased needs at least two samples on each side, got {n} and {m}.")
    ell = median_heuristic(x, y) if bandwidth is None else float(bandwidth)
    if not (np.isfinite(ell) and ell > 0):
        raise CatcompError(f"the kernel bandwidth must be a positive finite number, got {ell}.")
    gamma = 1.0 / (2.0 * ell**2)
    x = jnp.asarray(x, dtype=jnp.float64)
    y = jnp.asarray(y, dtype=jnp.float64)
    kxx = (float(_kernel_sum(x, x, gamma)) - n) / (n * (n - 1))  # the diagonal k(x_i, x_i) = 1 is removed
    kyy = (float(_kernel_sum(y, y, gamma)) - m) / (m * (m - 1))
    kxy = float(_kernel_sum(x, y, gamma)) / (n * m)
    return kxx + kyy - 2.0 * kxy
