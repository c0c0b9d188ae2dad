r"""The two-point argument (``paper_notes.md``, "Two-point lower bound") as a computed lower bound [ours].

Two worlds perturb every source's score by ``δ^± = ±a∇h`` with ``h`` a smooth bump supported on a ball ``B`` that
lies outside every source's highest-density region. Then

* the training-side errors agree exactly, ``‖δ^+‖_{L²(P_i)} = ‖δ^-‖_{L²(P_i)}`` for every ``i``, and ``a`` is chosen so
  that the largest equals ``ε``;
* the scores agree exactly (``δ^± = 0``) outside ``B``, so any procedure that queries the scores only on the sources'
  typical sets receives identical inputs in both worlds;
* the perturbed sources are ``P̂_i^± ∝ P_i e^{±a h}``, so the composed targets are ``Q̂^± ∝ Q e^{±a h Σ_i w_i}``.

Whatever such a procedure outputs (a law ``R``), ``max_± TV(R, Q̂^±) ≥ ½ TV(Q̂^+, Q̂^-)`` and
``max_± W₂(R, Q̂^±) ≥ ½ W₂(Q̂^+, Q̂^-) ≥ ½‖E_{Q̂^+}x − E_{Q̂^-}x‖`` (triangle inequality; Jensen). These are the computed
lower bounds. The construction is stated for the ``t = 0`` laws the models represent.
Integrals over ``B`` are by adaptive cubature (2-D); ``Q`` is a Gaussian target.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree

from closed_form.errors import CatcompError
from closed_form.ood import gaussian_hdr_threshold
from closed_form.quadrature import cubature_logpdf, integrate_function


class TwoPointBound(NamedTuple):
    center: np.ndarray
    radius: float
    amplitude: float
    train_norms: np.ndarray  # ‖δ^±‖_{L²(P_i)}, identical in both worlds
    source_mass_in_ball: np.ndarray
    target_mass_in_ball: float
    tv: float  # TV(Q̂+, Q̂-)
    kl: float  # KL(Q̂+ ‖ Q̂-)
    mean_gap: float  # ‖E_{Q̂+} x − E_{Q̂-} x‖ ≤ W2(Q̂+, Q̂-)
    tv_lower_bound: float  # ½ TV
    w2_lower_bound: float  # ½ mean gap


@jax.jit
def bump(x, center, radius):
    r"""``h(x) = exp(−1/(1 − s²))`` for ``s = ‖x − c‖/r < 1``, else 0 (smooth, compactly supported)."""
    s2 = jnp.sum((jnp.asarray(x) - center) ** 2, axis=-1) / radius**2
    inside = s2 < 1.0
    return jnp.where(inside, jnp.exp(-1.0 / jnp.where(inside, 1.0 - s2, 1.0)), 0.0)


@jax.jit
def bump_gradient(x, center, radius):
    r"""``∇h(x) = −2 h(x) (x − c) / (r² (1 − s²)²)``."""
    y = jnp.asarray(x) - center
    s2 = jnp.sum(y**2, axis=-1) / radius**2
    inside = s2 < 1.0
    one_m = jnp.where(inside, 1.0 - s2, 1.0)
    g = -2.0 * bump(x, center, radius) / (radius**2 * one_m**2)
    return g[..., None] * y


def _bump_numpy(x, center, radius):
    """:func:`bump` in NumPy."""
    s2 = np.sum((np.asarray(x, dtype=np.float64) - center) ** 2, axis=-1) / radius**2
    inside = s2 < 1.0
    return np.where(inside, np.exp(-1.0 / np.where(inside, 1.0 - s2, 1.0)), 0.0)


def _bump_gradient_numpy(x, center, radius):
    """:func:`bump_gradient` in NumPy."""
    y = np.asarray(x, dtype=np.float64) - center
    s2 = np.sum(y**2, axis=-1) / radius**2
    inside = s2 < 1.0
    one_m = np.where(inside, 1.0 - s2, 1.0)
    g = -2.0 * _bump_numpy(x, center, radius) / (radius**2 * one_m**2)
    return g[..., None] * y


def outside_hdr_ball(composition, level: float = 0.95, grid: int = 121):
    r"""A ball outside every source's ``level`` HDR, placed where ``Q`` has the most mass: over a grid of centers
    ``c`` within 8σ of ``Q``, the radius is the distance from ``c`` to the nearest HDR (0 inside one) and the
    center maximizes ``log Q(c) + d log r(c)``. Gaussian sources and target, 2-D."""
    q = composition.target
    if q.dim != 2:
        raise CatcompError("outside_hdr_ball is implemented in 2-D.")
    thr = gaussian_hdr_threshold(2, level)
    angles = np.linspace(0, 2 * np.pi, 1440, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)], -1)
    boundaries = [np.asarray(s.mean) + np.sqrt(thr) * circle @ np.asarray(s.chol).T for s in composition.sources]
    sd = np.sqrt(np.diag(np.asarray(q.cov)))
    axes = [np.linspace(m - 8 * s, m + 8 * s, grid) for m, s in zip(np.asarray(q.mean), sd)]
    centers = np.stack(np.meshgrid(*axes), -1).reshape(-1, 2)
    radius = np.full(len(centers), np.inf)
    for s, bnd in zip(composition.sources, boundaries):
        y = centers - np.asarray(s.mean)
        inside = np.einsum("ni,ij,nj->n", y, np.asarray(s.precision), y) <= thr
        # Nearest boundary point by a k-d tree: the same minimum over the same 1440 points as the brute-force
        # distance matrix (14641 × 1440 per source), without building it.
        dist = cKDTree(bnd).query(centers)[0]
        radius = np.minimum(radius, np.where(inside, 0.0, dist))
    with np.errstate(divide="ignore"):
        score = np.asarray(q.logpdf(centers)) + 2 * np.log(radius)
    k = int(np.argmax(score))
    return centers[k], float(radius[k])


def two_point_bound(composition, eps: float, center=None, radius=None, level: float = 0.95) -> TwoPointBound:
    """The two-point construction for a Gaussian ``composition`` in 2-D at training-side error ``eps``."""
    if center is None or radius is None:
        center, radius = outside_hdr_ball(composition, level)
    center = np.asarray(center, dtype=np.float64)
    if radius <= 0:
        raise CatcompError("no ball outside every source's HDR was found: the target sits inside the sources.")
    # The bump and its squared gradient in NumPy (the formulas of bump and bump_gradient): the cubature calls them on
    # point sets of many sizes, and a compiled JAX function compiled once per size.
    def h(x):
        return _bump_numpy(x, center, radius)

    def grad_sq(x):
        return np.sum(_bump_gradient_numpy(x, center, radius) ** 2, axis=-1)

    logpdfs = {}

    def under(dist, f):
        """``∫_B dist(x) f(x) dx`` in polar coordinates around the center (smooth integrand, no kink at ∂B)."""
        if id(dist) not in logpdfs:
            logpdfs[id(dist)] = cubature_logpdf(dist)
        lp = logpdfs[id(dist)]

        def g(pts):
            rho, phi = pts[:, 0], pts[:, 1]
            x = center + np.stack([rho * np.cos(phi), rho * np.sin(phi)], -1)
            return rho * np.exp(np.asarray(lp(x))) * np.asarray(f(x))

        return integrate_function(g, [0.0, 0.0], [radius, 2 * np.pi], rtol=1e-9, atol=1e-300)

    def indicator(x):
        return np.ones(x.shape[0])

    unit_norms = np.sqrt([under(s, grad_sq) for s in composition.sources])
    amplitude = float(eps / np.max(unit_norms))
    q = composition.target
    s = float(np.sum(composition.weights))
    if s == 0:
        raise CatcompError("with Σ w_i = 0 the two worlds compose to the same target; the construction needs Σ w_i ≠ 0.")
    k = amplitude * s
    z = {sg: 1.0 + under(q, lambda x, sg=sg: np.exp(sg * k * np.asarray(h(x))) - 1.0) for sg in (1, -1)}
    q_ball = under(q, indicator)
    in_ball = 0.5 * under(q, lambda x: np.abs(np.exp(k * np.asarray(h(x))) / z[1] - np.exp(-k * np.asarray(h(x))) / z[-1]))
    tv = in_ball + 0.5 * (1.0 - q_ball) * abs(1.0 / z[1] - 1.0 / z[-1])
    kl = 2 * k / z[1] * under(q, lambda x: np.asarray(h(x)) * np.exp(k * np.asarray(h(x)))) - np.log(z[1]) + np.log(z[-1])
    means = {}
    for sg in (1, -1):
        shift = np.array([under(q, lambda x, j=j, sg=sg: x[:, j] * (np.exp(sg * k * np.asarray(h(x))) - 1.0)) for j in range(2)])
        means[sg] = (np.asarray(q.mean) + shift) / z[sg]
    gap = float(np.linalg.norm(means[1] - means[-1]))
    return TwoPointBound(
        center=center,
        radius=float(radius),
        amplitude=amplitude,
        train_norms=amplitude * unit_norms,
        source_mass_in_ball=np.array([under(src, indicator) for src in composition.sources]),
        target_mass_in_ball=q_ball,
        tv=float(tv),
        kl=float(kl),
        mean_gap=gap,
        tv_lower_bound=float(tv) / 2,
        w2_lower_bound=gap / 2,
    )
