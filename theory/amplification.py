r"""How much a small source misspecification is amplified by composition: a generalized eigenvalue.

Misspecify every Gaussian source at ``t = 0``, ``P̂_i = N(μ_i + Δμ_i, Σ_i + ΔΣ_i)``, and diffuse exactly, so each
perturbed score is a true diffusion score; collect ``δ = (Δμ_i, vech ΔΣ_i)_i`` in one vector. Two quantities vanish
to second order at ``δ = 0``:

* the *training-side* error, the ε-prediction DSM excess averaged over the conditions (a conditional model trained
  with conditions drawn uniformly; :mod:`closed_form.score_matching`)

  .. math:: ε^2(δ) = \frac1n\sum_i \frac1T\int_0^T σ_t^2\,E_{q^i_t}\lVert ŝ_i − s_i\rVert^2 dt ≈ \tfrac12 δ^\top H_ε δ;

* the error of the composed target, ``KL(Q‖Q̂_δ) ≈ ½ δᵀH_K δ`` with ``Q̂_δ ∝ Π P̂_i^{w_i}`` — the law FKC converges to
  in continuous time with the misspecified scores, and what any sampler that is exact for its scores produces.

Their ratio along ``δ`` tends (``δ → 0``) to the generalized Rayleigh quotient ``δᵀH_Kδ / δᵀH_εδ``, whose supremum
is the largest generalized eigenvalue ``λ_max`` of ``H_K v = λ H_ε v`` (``H_ε ≻ 0``: the DSM excess vanishes only
for ``δ = 0``). :func:`amplification` computes both Hessians exactly by JAX autodiff and returns ``λ_max`` with its
direction. :func:`crossover` finds, along each generalized eigendirection and both signs, the smallest ``ε`` at which
``KL(Q_{t_min}‖Q̂_{δ,t_min})`` reaches a given level (the naive sampler's inference-time KL), by bisection on the exact
quantities.

**Degenerate eigenspaces.** ``λ_max`` can be a multiple eigenvalue (the paper's Gaussian settings all have a 2-D top
eigenspace: their symmetry group, the dihedral group of the square acting on ``(x₁, x₂)`` and swapping ``a1, a2``,
moves mean shifts as a 2-D representation). Every unit-``ε²`` direction of that eigenspace has the same
second-order amplification, but *which* basis vector ``eigh`` returns is arbitrary, and the exact ``KL(Q‖Q̂)`` at a
finite ``ε`` differs across the eigenspace. :attr:`Amplification.multiplicity` detects the degeneracy
(:data:`EIGENSPACE_RTOL`); :func:`eigenspace_search` returns the range (min–max) of any quantity over the top
eigenspace (a fine sweep of its unit circle refined by zooming on the extremes); :func:`eigenspace_range` applies it
to ``KL(Q_t‖Q̂_{δ,t})``, and :func:`worst_case_misspecification` takes the member of the eigenspace with the largest
``KL(Q‖Q̂)``, so no result depends on the arbitrary basis.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from closed_form.errors import CatcompError
from closed_form.gaussian import Gaussian
from closed_form.perturbations import misspecification_error
from closed_form.schedules import diffused_covariance
from closed_form.score_matching import affine_dsm_excess_sq, diffused_path

#: Quadrature nodes of the DSM integral inside the Hessians; 24 already agree with 128 to 1e-15 relative on the
#: paper's settings (``tests/test_score_matching.py`` checks 32 against 64).
N_NODES = 32

#: Two generalized eigenvalues are one (a degenerate eigenspace) when they agree to this relative tolerance. ``H_K`` and
#: ``H_ε`` are exact to round-off (autodiff of closed forms; the DSM quadrature converged to 1e-15 relative), and
#: ``scipy.linalg.eigh`` is backward stable, so a computed eigenvalue carries an error of about ``κ(H_ε)·u·λ_max``
#: (``u = 1.1e-16``): below 1e-13 relative on the paper's settings (``κ(H_ε) ≤ 732``), whose degenerate pairs agree
#: to 9e-16 while their distinct eigenvalues lie at least 3.4e-2 apart (relative). 1e-8 is five orders of magnitude
#: above that round-off and six below the smallest genuine gap measured; :func:`amplification` widens it when
#: ``κ(H_ε)·u`` would come within a factor 100 of it.
EIGENSPACE_RTOL = 1e-8

#: Angles of the first sweep of a 2-D eigenspace's unit circle (every 360°/64 = 5.6°; both signs of every direction are
#: on the circle); each extreme is then refined by :data:`EIGENSPACE_ZOOMS` zooms of :data:`EIGENSPACE_ZOOM_POINTS`
#: angles spanning ±1 previous spacing, so the extreme's angle is located to 360°/64/8² ≈ 0.09° and its value to
#: ``f''·(0.0015 rad)²/2``, far below the differences reported.
EIGENSPACE_ANGLES = 64
EIGENSPACE_ZOOMS = 2
EIGENSPACE_ZOOM_POINTS = 17


def _check_gaussian_composition(composition):
    if not all(isinstance(s, Gaussian) for s in composition.sources):
        raise CatcompError("the amplification is defined here for Gaussian sources (exact DSM excess and KL); got a "
                           "composition with mixture sources.")


def n_parameters(dim: int, n_sources: int) -> int:
    """Length of ``δ``: per source ``d`` mean entries and ``d(d+1)/2`` covariance entries (upper triangle)."""
    return n_sources * (dim + dim * (dim + 1) // 2)


def perturbed_sources(sources, delta):
    r"""``P̂_i = N(μ_i + Δμ_i, Σ_i + ΔΣ_i)`` from ``δ = (Δμ_1, vech ΔΣ_1, Δμ_2, …)``; ``vech`` lists the upper
    triangle row by row and ``ΔΣ`` is its symmetric completion. Traceable; no validation (use
    :func:`perturbed_sources_checked` for concrete values)."""
    d = sources[0].dim
    iu = np.triu_indices(d)
    per = d + len(iu[0])
    if not any(isinstance(a, jax.core.Tracer) for a in [delta] + [x for s in sources for x in (s.mean, s.cov)]):
        return _perturbed_sources_concrete(sources, np.asarray(delta, dtype=np.float64), iu, per)
    out = []
    for i, src in enumerate(sources):
        block = delta[i * per:(i + 1) * per]
        upper = jnp.zeros((d, d)).at[iu].set(block[d:])
        sym = upper + upper.T - jnp.diag(jnp.diag(upper))
        out.append(Gaussian._unchecked(src.mean + block[:d], src.cov + sym))
    return out


def _perturbed_sources_concrete(sources, delta, iu, per):
    """:func:`perturbed_sources` for concrete values, in NumPy (the same additions, so the same values): op by op
    the JAX code compiled a small program per operation and shape."""
    d = sources[0].dim
    out = []
    for i, src in enumerate(sources):
        block = delta[i * per:(i + 1) * per]
        upper = np.zeros((d, d))
        upper[iu] = block[d:]
        sym = upper + upper.T - np.diag(np.diag(upper))
        out.append(Gaussian._unchecked(_as_array(np.asarray(src.mean) + block[:d]), _as_array(np.asarray(src.cov) + sym)))
    return out


def perturbed_sources_checked(sources, delta) -> list[Gaussian]:
    """:func:`perturbed_sources` with validation: raises :class:`~closed_form.errors.NotPositiveDefiniteError` when a
    perturbed covariance is not positive definite (the perturbation does not define a distribution)."""
    return [Gaussian(np.asarray(g.mean), np.asarray(g.cov)) for g in perturbed_sources(sources, _as_array(delta))]


def _composed(sources, weights):
    r"""``Π P_i^{w_i}`` of Gaussians: precision ``Λ = Σ w_i Σ_i⁻¹``, mean ``Λ⁻¹ Σ w_i Σ_i⁻¹ μ_i`` (traceable)."""
    precs = [jnp.linalg.inv(s.cov) for s in sources]
    lam = sum(w * p for w, p in zip(weights, precs))
    h = sum(w * p @ s.mean for w, p, s in zip(weights, precs, sources))
    cov = jnp.linalg.inv(0.5 * (lam + lam.T))
    return cov @ h, cov


def _kl_trace_form(mean_p, cov_p, mean_q, cov_q):
    r"""``KL(N(m_p, Σ_p)‖N(m_q, Σ_q)) = ½[tr(Σ_q⁻¹Σ_p) − d + log|Σ_q| − log|Σ_p| + Δᵀ Σ_q⁻¹ Δ]``.

    The trace form rather than :func:`closed_form.divergences.kl`'s eigenvalue form, because the Hessian is taken
    at ``p = q``, where the whitened covariance is ``I`` and the eigenvalues' derivatives are undefined."""
    lq = jnp.linalg.cholesky(cov_q)
    lp = jnp.linalg.cholesky(cov_p)
    a = jax.scipy.linalg.solve_triangular(lq, lp, lower=True)
    z = jax.scipy.linalg.solve_triangular(lq, mean_p - mean_q, lower=True)
    logdet = 2.0 * (jnp.sum(jnp.log(jnp.diag(lq))) - jnp.sum(jnp.log(jnp.diag(lp))))
    return 0.5 * (jnp.sum(a**2) - mean_p.shape[0] + logdet + z @ z)


def _source_error_sq(block, mean, cov, schedule, n_nodes):
    """One source's DSM excess as a function of its own block of ``δ`` (the rest of ``δ`` does not enter)."""
    src = Gaussian._unchecked(mean, cov)
    fit = perturbed_sources([src], block)[0]
    err = misspecification_error(src, fit, schedule)
    return affine_dsm_excess_sq(err.field, diffused_path(src, schedule), schedule, n_nodes)


def _as_array(x):
    """``x`` as a float64 JAX array, put on the device without compiling a conversion program (op by op,
    ``jnp.asarray`` of a NumPy array compiles one per shape); a tracer as it is."""
    if isinstance(x, jax.core.Tracer):
        return x
    return jax.device_put(np.asarray(x, dtype=np.float64))


def _stack(composition):
    arrays = [a for s in composition.sources for a in (s.mean, s.cov)] + [composition.weights]
    if any(isinstance(a, jax.core.Tracer) for a in arrays):
        means = jnp.stack([s.mean for s in composition.sources])
        covs = jnp.stack([s.cov for s in composition.sources])
        return means, covs, jnp.asarray(composition.weights)
    return (_as_array(np.stack([np.asarray(s.mean) for s in composition.sources])),
            _as_array(np.stack([np.asarray(s.cov) for s in composition.sources])), _as_array(composition.weights))


def _blocks(delta, n):
    return jnp.reshape(delta, (n, -1))


# Compiled once per (dimension, number of sources, schedule, nodes): the sources enter as arguments, not constants,
# so every setting and every point of a family reuses one compilation.
@partial(jax.jit, static_argnames=("schedule", "n_nodes"))
def _error_sq(delta, means, covs, schedule, n_nodes):
    blocks = _blocks(delta, means.shape[0])
    return jnp.mean(jax.vmap(lambda b, m, c: _source_error_sq(b, m, c, schedule, n_nodes))(blocks, means, covs))


@partial(jax.jit, static_argnames=("schedule", "n_nodes"))
def _error_sq_hessian_blocks(means, covs, schedule, n_nodes):
    zero = jnp.zeros(n_parameters(means.shape[1], 1))
    return jax.vmap(lambda m, c: jax.hessian(_source_error_sq)(zero, m, c, schedule, n_nodes))(means, covs)


def _sources_of(means, covs):
    return [Gaussian._unchecked(m, c) for m, c in zip(means, covs)]


@partial(jax.jit, static_argnames=("schedule",))
def _target_kl(delta, means, covs, weights, schedule, t):
    sources = _sources_of(means, covs)
    m, c = _composed(sources, weights)
    mh, ch = _composed(perturbed_sources(sources, delta), weights)
    return _kl_trace_form(*_diffused(m, c, schedule, t), *_diffused(mh, ch, schedule, t))


@partial(jax.jit, static_argnames=("schedule",))
def _target_kl_hessian(means, covs, weights, schedule, t):
    zero = jnp.zeros(means.shape[0] * n_parameters(means.shape[1], 1))
    return jax.hessian(_target_kl)(zero, means, covs, weights, schedule, t)


def training_error_sq(composition, schedule, delta, n_nodes: int = N_NODES):
    r"""``ε²(δ) = (1/n) Σ_i ε_i²``, each ``ε_i²`` the DSM excess of source ``i``'s misspecified score under its own
    diffused law (traceable in ``δ``)."""
    _check_gaussian_composition(composition)
    means, covs, _ = _stack(composition)
    return _error_sq(_as_array(delta), means, covs, schedule, n_nodes)


def _diffused(mean, cov, schedule, t):
    return schedule.alpha(t) * mean, diffused_covariance(schedule, cov, t)


def target_kl(composition, schedule, delta, t: float = 0.0):
    r"""``KL(Q_t‖Q̂_{δ,t})``: the diffused target against the diffused composition of the misspecified sources
    (``t = 0``: ``KL(Q‖Q̂_δ)``); traceable in ``δ``, and ``NaN`` (not an error) where ``Q̂_δ`` is improper."""
    _check_gaussian_composition(composition)
    means, covs, weights = _stack(composition)
    return _target_kl(_as_array(delta), means, covs, weights, schedule, t)


@dataclass(frozen=True)
class Amplification:
    r"""The worst-case amplification ``sup_δ lim KL(Q‖Q̂_δ)/ε(δ)² = λ_max`` and its ingredients.

    Attributes
    ----------
    value : float
        ``λ_max``, the largest generalized eigenvalue of ``(H_K, H_ε)``.
    eigenvalues : ndarray
        All generalized eigenvalues, ascending.
    directions : ndarray, shape (p, p)
        Column ``k`` is the eigenvector of ``eigenvalues[k]``, scaled so that ``½ vᵀH_εv = 1`` (unit training error
        to second order).
    hess_kl, hess_eps : ndarray, shape (p, p)
        ``H_K = ∇²KL(Q‖Q̂_δ)`` and ``H_ε = ∇²ε²(δ)`` at ``δ = 0``.
    source_share : ndarray, shape (n,)
        Fraction of the worst direction's ``ε²`` that each source carries (``H_ε`` is block diagonal by source).
        Where the top eigenspace is degenerate, the share of its basis vector :attr:`direction` (arbitrary).
    rtol : float
        The relative tolerance within which eigenvalues count as equal (:data:`EIGENSPACE_RTOL`, or wider where
        ``H_ε`` is ill-conditioned).
    """

    value: float
    eigenvalues: np.ndarray
    directions: np.ndarray
    hess_kl: np.ndarray
    hess_eps: np.ndarray
    source_share: np.ndarray
    rtol: float = EIGENSPACE_RTOL

    @property
    def direction(self) -> np.ndarray:
        """A worst direction ``v`` (``½vᵀH_εv = 1``). Where :attr:`multiplicity` > 1 it is an arbitrary member of
        the top eigenspace (whatever basis ``eigh`` returned): use :attr:`top_eigenspace` and
        :func:`eigenspace_search` for anything beyond second order."""
        return self.directions[:, -1]

    @property
    def multiplicity(self) -> int:
        """How many generalized eigenvalues equal ``λ_max`` to relative tolerance :attr:`rtol`."""
        lam = self.eigenvalues
        return int(np.sum(np.abs(lam - lam[-1]) <= self.rtol * abs(lam[-1])))

    @property
    def next_eigenvalue(self) -> float:
        """The largest eigenvalue below ``λ_max`` (``nan`` when every eigenvalue equals it)."""
        m = self.multiplicity
        return float(self.eigenvalues[-1 - m]) if m < len(self.eigenvalues) else float("nan")

    @property
    def top_eigenspace(self) -> np.ndarray:
        """Basis of the top eigenspace, shape ``(p, multiplicity)``, ``H_ε``-orthogonal with ``½vᵀH_εv = 1``: every
        ``Σ_k c_k v_k`` with ``‖c‖ = 1`` is a unit-``ε²`` worst direction to second order."""
        return self.directions[:, -self.multiplicity:]


def amplification(composition, schedule, n_nodes: int = N_NODES) -> Amplification:
    r"""``λ_max`` of ``H_K v = λ H_ε v`` at ``δ = 0`` (module doc), Hessians by ``jax.hessian``.

    Raises
    ------
    CatcompError
        For mixture sources, or if ``H_ε`` is not positive definite (it is, for non-degenerate sources).
    """
    from scipy.linalg import eigh

    _check_gaussian_composition(composition)
    p = n_parameters(composition.dim, len(composition.sources))
    means, covs, weights = _stack(composition)
    h_k = np.asarray(_target_kl_hessian(means, covs, weights, schedule, 0.0))
    h_k, h_e = 0.5 * (h_k + h_k.T), amplification_hessian_eps(composition, schedule, n_nodes)
    if np.linalg.eigvalsh(h_e)[0] <= 0:
        raise CatcompError("the DSM Hessian is not positive definite; the sources must be non-degenerate.")
    lam, vec = eigh(h_k, h_e)  # vᵀ H_ε v = 1
    vec = vec * np.sqrt(2.0)  # ½ vᵀ H_ε v = 1
    v = vec[:, -1]
    per = p // len(composition.sources)
    shares = np.array([0.5 * v[i * per:(i + 1) * per] @ h_e[i * per:(i + 1) * per, i * per:(i + 1) * per]
                       @ v[i * per:(i + 1) * per] for i in range(len(composition.sources))])
    # eigh's round-off on the eigenvalues is about κ(H_ε)·u relative; keep the tolerance 100 times above it.
    rtol = max(EIGENSPACE_RTOL, 100.0 * np.linalg.cond(h_e) * np.finfo(np.float64).eps)
    return Amplification(float(lam[-1]), lam, vec, h_k, h_e, shares / shares.sum(), float(rtol))


@dataclass(frozen=True)
class Crossover:
    """The smallest training-side ``ε`` (over the rays searched) at which ``KL(Q_{t_min}‖Q̂_{δ,t_min})`` reaches
    ``level``; ``delta`` is the crossing perturbation, ``direction``/``sign``/``angle`` the ray it lies on (eigenvector
    index, sign, and angle within a degenerate eigenspace); ``inf`` ε and ``None`` ray if no ray crosses before its
    perturbed covariances stop being positive definite."""

    eps: float
    delta: np.ndarray | None
    direction: int | None
    sign: float | None
    level: float
    angle: float = 0.0


@partial(jax.jit, static_argnames=("schedule",))
def _ray_states(deltas, level, means, covs, weights, schedule, t):
    """Per row of ``deltas``: 0 if ``KL < level``, 1 if ``KL ≥ level`` or ``Q̂`` is improper (``KL = ∞``), 2 if a
    perturbed covariance is not positive definite (no distribution)."""

    def one(delta):
        sources = perturbed_sources(_sources_of(means, covs), delta)
        valid = jnp.all(jnp.stack([jnp.linalg.eigvalsh(g.cov)[0] for g in sources]) > 0)
        lam = sum(w * jnp.linalg.inv(g.cov) for w, g in zip(weights, sources))
        proper = jnp.linalg.eigvalsh(0.5 * (lam + lam.T))[0] > 0
        kl_value = _target_kl(delta, means, covs, weights, schedule, t)
        reached = jnp.logical_or(jnp.logical_not(proper), kl_value >= level)
        return jnp.where(valid, jnp.where(reached, 1, 0), 2)

    return jax.vmap(one)(deltas)


def _rays(amp: Amplification, n_angles: int):
    """Unit-ε² rays: every generalized eigenvector with both signs, and, in each eigenspace of multiplicity > 1
    (eigenvalues equal to ``amp.rtol`` relative), ``n_angles`` directions around the circle spanned by its first two
    vectors (an eigenspace's basis is arbitrary, so its worst member is searched for)."""
    lam, vec = amp.eigenvalues, amp.directions
    rays, labels = [], []
    for k in range(len(lam)):
        for sign in (1.0, -1.0):
            rays.append(sign * vec[:, k])
            labels.append((k, sign, 0.0))
    k = 0
    while k < len(lam) - 1:
        if abs(lam[k + 1] - lam[k]) <= amp.rtol * max(abs(lam[k + 1]), 1e-300):
            for phi in np.linspace(0.0, 2 * np.pi, n_angles, endpoint=False)[1:]:
                if np.isclose(phi % (np.pi / 2), 0.0):
                    continue  # already an eigenvector ray
                rays.append(np.cos(phi) * vec[:, k] + np.sin(phi) * vec[:, k + 1])
                labels.append((k, 1.0, float(phi)))
        k += 1
    return np.stack(rays, axis=1), labels


def crossover(composition, schedule, level: float, amp: Amplification | None = None, t_min: float = 1e-4,
              n_nodes: int = N_NODES, n_angles: int = 16, rtol: float = 1e-9) -> Crossover:
    r"""Smallest ``ε`` at which ``KL(Q_{t_min}‖Q̂_{δ,t_min}) ≥ level`` along rays ``δ = s·v``.

    The rays are the generalized eigendirections of :func:`amplification` with both signs, plus ``n_angles``
    directions around each degenerate eigenspace (:func:`_rays`); all are searched in lockstep: ``s`` is doubled from
    the second-order guess ``√(level/λ_max)/4`` until the KL reaches ``level`` (or ``Q̂`` becomes improper,
    ``KL = ∞``), then bisected to relative precision ``rtol``; a ray whose perturbed covariances leave the
    positive-definite cone before crossing does not count. The crossing ``ε = √ε²(δ)`` is exact (quadrature), and
    the smallest over the rays is returned: an upper bound of the infimum over all directions, equal to it to second
    order (where the top eigendirection is the worst). A ``level ≤ 0`` crosses at ``ε = 0``.
    """
    if not np.isfinite(level):
        raise CatcompError(f"level must be a finite KL, got {level!r}.")
    p = n_parameters(composition.dim, len(composition.sources))
    if level <= 0:
        return Crossover(0.0, np.zeros(p), None, None, level)
    amp = amp or amplification(composition, schedule, n_nodes)
    means, covs, weights = _stack(composition)
    rays, labels = _rays(amp, n_angles)
    s_lo = np.zeros(rays.shape[1])
    s_hi = np.full(rays.shape[1], 0.25 * np.sqrt(level / amp.value))
    state = np.zeros(rays.shape[1], dtype=int)
    for _ in range(80):  # doubling until every ray crosses or turns invalid
        todo = state == 0
        if not todo.any():
            break
        st = np.asarray(_ray_states(_as_array((rays * s_hi).T), level, means, covs, weights, schedule, t_min))
        state = np.where(todo, st, state)
        grow = todo & (st == 0)
        s_lo, s_hi = np.where(grow, s_hi, s_lo), np.where(grow, 2.0 * s_hi, s_hi)
    crossing = state == 1
    while np.any(crossing & (s_hi - s_lo > rtol * s_hi)):
        mid = 0.5 * (s_lo + s_hi)
        st = np.asarray(_ray_states(_as_array((rays * mid).T), level, means, covs, weights, schedule, t_min))
        # an invalid stretch before the crossing means the ray does not cross as a distribution
        crossing &= st != 2
        s_lo, s_hi = np.where(st == 0, mid, s_lo), np.where(st == 1, mid, s_hi)
    if not crossing.any():
        return Crossover(np.inf, None, None, None, level)
    deltas = (rays * s_hi).T[crossing]
    eps = np.sqrt([float(_error_sq(_as_array(d), means, covs, schedule, n_nodes)) for d in deltas])
    j = int(np.argmin(eps))
    k, sign, phi = [lab for lab, c in zip(labels, crossing) if c][j]
    return Crossover(float(eps[j]), deltas[j], int(k), sign, level, float(phi))


def calibrate(composition, schedule, eps: float, direction, n_nodes: int = N_NODES) -> np.ndarray:
    r"""``δ = s·direction`` with ``s > 0`` solving ``ε²(s·direction) = eps²`` exactly (Brent's method on the
    quadrature; the bracket is grown from the second-order guess).

    Raises
    ------
    CatcompError
        For ``eps < 0`` or non-finite, or if the perturbed covariances stop being positive definite before the
        training-side error reaches ``eps`` along ``direction``.
    """
    from scipy.optimize import brentq

    if not (np.isfinite(eps) and eps >= 0):
        raise CatcompError(f"the training-side error ε must be a finite number ≥ 0, got {eps!r}.")
    v = np.asarray(direction, dtype=np.float64)
    if eps == 0:
        return np.zeros_like(v)
    means, covs, _ = _stack(composition)

    def excess(s):
        return float(_error_sq(_as_array(s * v), means, covs, schedule, n_nodes)) - eps**2

    def valid(s):
        return all(np.linalg.eigvalsh(np.asarray(g.cov))[0] > 0
                   for g in perturbed_sources(composition.sources, _as_array(s * v)))

    hi = eps / np.sqrt(max(0.5 * v @ amplification_hessian_eps(composition, schedule, n_nodes) @ v, 1e-300))
    lo = 0.0
    for _ in range(60):
        if not valid(hi):
            raise CatcompError(f"along this direction the perturbed covariances leave the positive-definite cone "
                               f"before the training-side error reaches ε = {eps:g}; use a smaller ε.")
        if excess(hi) >= 0:
            break
        lo, hi = hi, 2.0 * hi
    return brentq(excess, lo, hi, xtol=1e-14, rtol=1e-13) * v


def amplification_hessian_eps(composition, schedule, n_nodes: int = N_NODES) -> np.ndarray:
    """``H_ε = ∇²ε²(δ)`` at ``δ = 0`` (block diagonal by source)."""
    _check_gaussian_composition(composition)
    n = len(composition.sources)
    p = n_parameters(composition.dim, n)
    means, covs, _ = _stack(composition)
    blocks = np.asarray(_error_sq_hessian_blocks(means, covs, schedule, n_nodes)) / n  # ε² is the mean over sources
    h_e = np.zeros((p, p))
    for i, b in enumerate(blocks):
        h_e[i * (p // n):(i + 1) * (p // n), i * (p // n):(i + 1) * (p // n)] = b
    return 0.5 * (h_e + h_e.T)


#: Batched evaluations pad their rows to a multiple of this, so that each compiled batch shape is reused (a new
#: shape costs a compilation of seconds; a padded row costs microseconds).
BATCH_ROWS = 64


def pad_rows(x, size: int = BATCH_ROWS):
    """``x`` (rows) padded with copies of its first row to a multiple of ``size`` rows, and the original count."""
    x = np.asarray(x)
    n = len(x)
    total = max(size, -(-n // size) * size)
    return (np.concatenate([x, np.repeat(x[:1], total - n, axis=0)]) if total > n else x), n


@partial(jax.jit, static_argnames=("schedule", "n_nodes"))
def _error_sq_many(deltas, means, covs, schedule, n_nodes):
    return jax.vmap(lambda d: _error_sq(d, means, covs, schedule, n_nodes))(deltas)


@jax.jit
def _valid_many(deltas, means, covs):
    """Per row of ``deltas``: whether every perturbed covariance is positive definite."""
    def one(delta):
        sources = perturbed_sources(_sources_of(means, covs), delta)
        return jnp.all(jnp.stack([jnp.linalg.eigvalsh(g.cov)[0] for g in sources]) > 0)
    return jax.vmap(one)(deltas)


@partial(jax.jit, static_argnames=("schedule",))
def _target_kl_many(deltas, means, covs, weights, schedule, t):
    """``KL(Q_t‖Q̂_{δ,t})`` per row of ``deltas``, ``inf`` where ``Q̂_δ`` is improper (its precision not PD)."""
    def one(delta):
        sources = perturbed_sources(_sources_of(means, covs), delta)
        lam = sum(w * jnp.linalg.inv(g.cov) for w, g in zip(weights, sources))
        proper = jnp.linalg.eigvalsh(0.5 * (lam + lam.T))[0] > 0
        return jnp.where(proper, _target_kl(delta, means, covs, weights, schedule, t), jnp.inf)
    return jax.vmap(one)(deltas)


def target_kl_many(composition, schedule, deltas, t: float = 0.0) -> np.ndarray:
    r""":func:`target_kl` for each row of ``deltas`` (one compiled batch), ``inf`` where ``Q̂_δ`` is improper."""
    _check_gaussian_composition(composition)
    means, covs, weights = _stack(composition)
    rows, n = pad_rows(np.atleast_2d(np.asarray(deltas, dtype=np.float64)))
    return np.asarray(_target_kl_many(_as_array(rows), means, covs, weights, schedule, float(t)))[:n]


def calibrate_many(composition, schedule, eps: float, directions, n_nodes: int = N_NODES, hess_eps=None):
    r""":func:`calibrate` for many directions at once: rows ``δ_j = s_j·v_j`` with ``ε²(δ_j) = eps²``, by a doubling
    bracket and bisection of every ``s_j`` in lockstep to relative precision 1e-13 (the same root as
    :func:`calibrate`'s Brent iteration, to that precision).

    Parameters
    ----------
    directions : array, shape (n, p)
        One direction per row.
    hess_eps : array, shape (p, p), optional
        ``H_ε`` if already computed (:attr:`Amplification.hess_eps`); it only sets the first bracket.

    Returns
    -------
    deltas : ndarray, shape (n, p)
        ``NaN`` rows where the perturbed covariances leave the positive-definite cone before the training-side error
        reaches ``eps`` along that direction.
    valid : ndarray of bool, shape (n,)

    Raises
    ------
    CatcompError
        For ``eps`` negative or not finite, or directions of the wrong length.
    """
    if not (np.isfinite(eps) and eps >= 0):
        raise CatcompError(f"the training-side error ε must be a finite number ≥ 0, got {eps!r}.")
    _check_gaussian_composition(composition)
    v = np.atleast_2d(np.asarray(directions, dtype=np.float64))
    p = n_parameters(composition.dim, len(composition.sources))
    if v.shape[1] != p:
        raise CatcompError(f"directions must have {p} entries per row (δ of this composition), got {v.shape[1]}.")
    if eps == 0:
        return np.zeros_like(v), np.ones(len(v), dtype=bool)
    v, n_rows = pad_rows(v)
    means, covs, _ = _stack(composition)
    h_e = amplification_hessian_eps(composition, schedule, n_nodes) if hess_eps is None else np.asarray(hess_eps)
    quad = np.maximum(0.5 * np.einsum("ni,ij,nj->n", v, h_e, v), 1e-300)

    def state(s):
        """ε²(s·v) − eps² per row, +inf where the perturbed covariances are not PD (past the valid interval)."""
        d = _as_array(s[:, None] * v)
        ok = np.asarray(_valid_many(d, means, covs))
        err = np.asarray(_error_sq_many(d, means, covs, schedule, n_nodes)) - eps**2
        return np.where(ok, err, np.inf), ok

    lo = np.zeros(len(v))
    hi = 0.5 * eps / np.sqrt(quad)  # half the second-order guess: ε²(hi·v) < eps² to second order
    valid = np.ones(len(v), dtype=bool)
    for _ in range(60):  # doubling: the valid set along a ray is an interval [0, s_max) (the PD cone is convex)
        g, ok = state(hi)
        valid &= ok
        grow = valid & (g < 0)
        if not grow.any():
            break
        lo, hi = np.where(grow, hi, lo), np.where(grow, 2.0 * hi, hi)
    for _ in range(200):  # bisection in lockstep
        todo = valid & (hi - lo > 1e-13 * hi)
        if not todo.any():
            break
        mid = 0.5 * (lo + hi)
        g, ok = state(mid)
        below = ok & (g < 0)
        lo, hi = np.where(todo & below, mid, lo), np.where(todo & ~below, mid, hi)
    deltas = np.where(valid[:, None], hi[:, None] * v, np.nan)
    return deltas[:n_rows], valid[:n_rows]


@dataclass(frozen=True)
class EigenspaceSearch:
    r"""The range over the top eigenspace of quantities evaluated along its unit-``ε²`` directions.

    Attributes
    ----------
    multiplicity : int
        Dimension of the top eigenspace.
    coverage : str
        ``"both signs"`` (multiplicity 1: ``±v``), ``"unit circle"`` (multiplicity 2: every direction of the
        eigenspace) or ``"great circles through basis pairs"`` (multiplicity ≥ 3: a sub-range of the eigenspace's).
    minimum, maximum : dict
        Per quantity, its smallest and largest value over the valid directions searched (``inf`` allowed).
    argmin, argmax : dict
        Per quantity, the direction (shape ``(p,)``, ``½vᵀH_εv = 1``) where it is attained.
    n_directions, n_valid : int
        Directions evaluated, and those where every quantity was defined (not NaN).
    """

    multiplicity: int
    coverage: str
    minimum: dict
    maximum: dict
    argmin: dict
    argmax: dict
    n_directions: int
    n_valid: int


def eigenspace_search(amp: Amplification, evaluate, n_angles: int = EIGENSPACE_ANGLES,
                      zooms: int = EIGENSPACE_ZOOMS, zoom_points: int = EIGENSPACE_ZOOM_POINTS) -> EigenspaceSearch:
    r"""Min and max of the quantities ``evaluate`` returns, over the unit-``ε²`` directions of the top eigenspace.

    ``evaluate(directions)`` takes an array of shape ``(n, p)`` (one direction per row) and returns a dict of arrays
    of shape ``(n,)`` (``NaN`` where a quantity is undefined along a direction, e.g. past the positive-definite cone;
    ``inf`` allowed). Multiplicity 1: the two signs ``±v``. Multiplicity 2: ``v(φ) = cos φ·v₁ + sin φ·v₂`` at
    ``n_angles`` equally spaced ``φ`` (the whole unit circle, so both signs of every direction), then, for each
    quantity's minimum and maximum, ``zooms`` finer sweeps of ``zoom_points`` angles spanning ±1 previous spacing
    around the best angle so far. Multiplicity ≥ 3: the same on the great circle through each pair of basis vectors
    (a sub-range of the eigenspace's, said by ``coverage``).

    Raises
    ------
    CatcompError
        If no direction searched gives every quantity a value.
    """
    basis = amp.top_eigenspace
    m = basis.shape[1]
    found: dict = {}
    counts = [0, 0]

    def run(directions):
        out = {k: np.asarray(x, dtype=np.float64) for k, x in evaluate(np.asarray(directions)).items()}
        ok = np.all([~np.isnan(x) for x in out.values()], axis=0)
        counts[0] += len(directions)
        counts[1] += int(ok.sum())
        for key, x in out.items():
            lo, hi = found.setdefault(key, [(np.inf, None), (-np.inf, None)])
            for j in np.flatnonzero(ok):
                if x[j] < lo[0] or lo[1] is None:
                    lo = (x[j], directions[j])
                if x[j] > hi[0] or hi[1] is None:
                    hi = (x[j], directions[j])
            found[key] = [lo, hi]
        return out, ok

    if m == 1:
        coverage = "both signs"
        run(np.stack([basis[:, 0], -basis[:, 0]]))
    else:
        coverage = "unit circle" if m == 2 else "great circles through basis pairs"
        for i in range(m):
            for j in range(i + 1, m):
                plane = basis[:, [i, j]]
                phis = np.linspace(0.0, 2 * np.pi, n_angles, endpoint=False)
                spacing = 2 * np.pi / n_angles
                out, ok = run(np.stack([np.cos(phis), np.sin(phis)], 1) @ plane.T)
                centres = []
                for x in out.values():
                    if ok.any():
                        xs = np.where(ok, x, np.nan)
                        centres += [phis[int(np.nanargmin(xs))], phis[int(np.nanargmax(xs))]]
                for _ in range(zooms):
                    grid = np.concatenate([c + np.linspace(-spacing, spacing, zoom_points) for c in centres])
                    out, ok = run(np.stack([np.cos(grid), np.sin(grid)], 1) @ plane.T)
                    spacing = 2 * spacing / (zoom_points - 1)
                    centres = []
                    for x in out.values():
                        if ok.any():
                            xs = np.where(ok, x, np.nan)
                            centres += [grid[int(np.nanargmin(xs))], grid[int(np.nanargmax(xs))]]
    if counts[1] == 0:
        raise CatcompError("no direction of the top eigenspace gives every quantity a value (each leaves the "
                           "positive-definite cone first); use a smaller ε.")
    return EigenspaceSearch(m, coverage, {k: float(v[0][0]) for k, v in found.items()},
                            {k: float(v[1][0]) for k, v in found.items()},
                            {k: np.asarray(v[0][1]) for k, v in found.items()},
                            {k: np.asarray(v[1][1]) for k, v in found.items()}, counts[0], counts[1])


def eigenspace_kl(composition, schedule, eps: float, t: float = 0.0, n_nodes: int = N_NODES):
    r"""``evaluate`` for :func:`eigenspace_search`: ``directions ↦ {"kl": KL(Q_t‖Q̂_{δ,t})}`` with each direction
    calibrated to training-side ``eps`` (:func:`calibrate_many`); ``inf`` where ``Q̂_δ`` is improper, ``NaN`` where
    the direction leaves the positive-definite cone before ``eps``."""
    def evaluate(directions):
        deltas, valid = calibrate_many(composition, schedule, eps, directions, n_nodes)
        kl_values = np.full(len(deltas), np.nan)
        if valid.any():
            kl_values[valid] = target_kl_many(composition, schedule, deltas[valid], t)
        return {"kl": kl_values}

    return evaluate


@dataclass(frozen=True)
class EigenspaceRange:
    r"""The range of ``KL(Q_t‖Q̂_{δ,t})`` over the unit-``ε²`` directions of the top eigenspace, each calibrated to
    training-side ``ε`` exactly (:func:`eigenspace_range`); ``delta_min``/``delta_max`` attain the extremes."""

    eps: float
    t: float
    multiplicity: int
    coverage: str
    kl_min: float
    kl_max: float
    delta_min: np.ndarray
    delta_max: np.ndarray
    n_directions: int


def eigenspace_range(composition, schedule, eps: float, amp: Amplification | None = None, t: float = 0.0,
                     n_nodes: int = N_NODES, **search) -> EigenspaceRange:
    r"""Min and max of ``KL(Q_t‖Q̂_{δ,t})`` over the top eigenspace at training-side ``eps`` (:func:`eigenspace_search`
    with :func:`eigenspace_kl`; ``search`` passes ``n_angles``, ``zooms``, ``zoom_points``). The extremes' ``δ`` are
    recalibrated by :func:`calibrate` (Brent's method).

    Raises
    ------
    CatcompError
        For mixture sources, an invalid ``eps``, or if every direction leaves the positive-definite cone first.
    """
    amp = amp or amplification(composition, schedule, n_nodes)
    res = eigenspace_search(amp, eigenspace_kl(composition, schedule, eps, t, n_nodes), **search)
    d_min = calibrate(composition, schedule, eps, res.argmin["kl"], n_nodes)
    d_max = calibrate(composition, schedule, eps, res.argmax["kl"], n_nodes)
    return EigenspaceRange(float(eps), float(t), res.multiplicity, res.coverage, res.minimum["kl"],
                           res.maximum["kl"], d_min, d_max, res.n_directions)


def worst_case_misspecification(composition, schedule, eps: float, amp: Amplification | None = None,
                                n_nodes: int = N_NODES):
    r"""The misspecified sources ``P̂_i`` at training-side size ``eps`` along the worst direction of
    :func:`amplification`: of the unit-``ε²`` directions of the top eigenspace (both signs; its whole unit circle
    where ``λ_max`` is double, :func:`eigenspace_range`), the one that gives the largest ``KL(Q‖Q̂)`` (the
    second-order worst case is the same for all of them; the exact one is not). Returns ``(sources, delta)``.

    Raises
    ------
    CatcompError
        If no direction reaches training-side error ``eps`` with positive-definite covariances.
    """
    amp = amp or amplification(composition, schedule, n_nodes)
    try:
        res = eigenspace_range(composition, schedule, eps, amp, 0.0, n_nodes)
    except CatcompError as err:
        raise CatcompError(f"no direction of the top eigenspace reaches training-side error ε = {eps:g} with "
                           "positive definite covariances; use a smaller ε.") from err
    return perturbed_sources_checked(composition.sources, res.delta_max), res.delta_max


__all__ = [
    "EIGENSPACE_ANGLES",
    "EIGENSPACE_RTOL",
    "Amplification",
    "Crossover",
    "EigenspaceRange",
    "EigenspaceSearch",
    "BATCH_ROWS",
    "N_NODES",
    "amplification",
    "amplification_hessian_eps",
    "calibrate",
    "calibrate_many",
    "crossover",
    "eigenspace_kl",
    "eigenspace_range",
    "eigenspace_search",
    "n_parameters",
    "pad_rows",
    "perturbed_sources",
    "perturbed_sources_checked",
    "target_kl",
    "target_kl_many",
    "training_error_sq",
    "worst_case_misspecification",
]
