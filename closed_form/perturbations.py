r"""Score-estimation error models: ``ŝ_i = s_i + δ_i``, calibrated by their *training-side* size.

Score matching controls ``ε_i(t) = ‖δ_i(·, t)‖_{L²(q^i_t)}`` — the error measured where source ``i`` lives. Sampling
a composed target pays ``‖δ_i‖_{L²(Q_t)}`` (or ``L²(π_t)``) instead. Every model here states both:
``training_norm(t)`` and ``norm_under(dist, t)`` (exact when ``dist`` is Gaussian).

What training reduces is the time integral of ``ε_i(t)²`` with the ε-prediction weighting, the DSM excess
(:mod:`closed_form.score_matching`; :meth:`AffineScoreError.dsm_excess`).

Models, each stated as what it is:

1. Source misspecification — the default training-side error model. :func:`misspecification_error` (Gaussians) and
   :class:`MixtureMisspecificationError` (mixtures; :func:`misspecified_mixture`; the strength that makes its DSM
   excess ``ε²`` is found by Monte Carlo, :func:`verify.analysis.montecarlo.calibrated_mixture_misspecification`) use the
   exact scores of a misspecified source diffused exactly:
   every perturbed score is a true diffusion score (a gradient field, consistent across ``t``), so FKC's
   ``K → ∞`` target is the composition of the misspecified sources.
2. :class:`AffineScoreError` ``δ(x, t) = −A_δ(t) x + b_δ(t)`` — the affine errors whose effect on the samplers is
   exact through :mod:`closed_form.laws` (its :meth:`~AffineScoreError.field` adds to a naive field with
   :func:`closed_form.fields.add_fields`). Besides :func:`misspecification_error`: :func:`precision_error` (the
   diffused precision misestimated by a relative ``η(t)`` recalibrated at every ``t``: a Gaussian score at each
   ``t`` but *time-inconsistent*, not the diffusion of any one law) and :func:`calibrated_affine_error` (any
   direction rescaled at every ``t``: time-inconsistent, and a gradient only for symmetric ``A_δ``).
3. :class:`DensityPowerError` — smooth, nonlinear, OOD-growing: ``δ ∝ q^i_t(x)^{−γ}`` (``0 < γ < ½``) along a fixed
   direction; exactly calibrated for Gaussian sources. *Not a gradient field* (a constant direction times a
   non-constant scalar): a sampler driven by it has no density it targets.
4. :class:`DensityRatioError` — ``‖δ‖ ∝ dQ_t/dq^i_t``, the Cauchy–Schwarz equality case of the transfer bound;
   likewise not a gradient field.

All ``delta`` methods are JAX functions of ``(x, t)`` with ``t`` possibly traced.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from closed_form.divergences import ress_inverse
from closed_form.errors import CatcompError, ShapeMismatchError
from closed_form.fields import CodiagonalField, FieldSum, _pytree_form
from closed_form.gaussian import Gaussian
from closed_form.mixture import GaussianMixture
from closed_form.pytree import FrozenPytree
from closed_form.schedules import diffused_covariance
from closed_form.score_matching import affine_dsm_excess, affine_sq_norm, diffused_path
from closed_form.validation import check_error_size, is_array_tree, is_concrete, is_concrete_array_tree, under_a_jit


def _compiled(method):
    r"""``method(self, *args)`` as one compiled program per structure and shapes when ``self`` (a pytree) and the
    arguments are arrays (concrete, or batched by an op-by-op ``vmap``) and ``self._compilable()`` gives an equivalent
    pytree; otherwise (traced values inside another ``jit``, a field that is a closure) the ``jax.numpy`` code runs as
    it is. Op by op each ``jax.numpy`` operation compiled its own small program per shape."""
    jitted = jax.jit(method)

    @functools.wraps(method)
    def call(self, *args):
        if is_concrete_array_tree(args) or (is_array_tree(args) and not under_a_jit()):
            # concrete arguments, or the batched ones of an op-by-op vmap (compiled once per batch shape)
            twin = self._compilable()
            if twin is not None:
                return jitted(twin, *args)
        return method(self, *args)

    return call


class _Label:
    """An error model's display name as static pytree data that every other label equals, so that two errors which
    differ only in their values (and hence their names) share a tree structure and compiled code."""

    def __init__(self, text: str):
        self.text = text

    def __eq__(self, other):
        return isinstance(other, _Label)

    def __hash__(self):
        return hash(_Label)


def _affine_moments(a, b, dist: Gaussian):
    r"""For ``δ(x) = −A x + b`` and ``x ~ N(m, P)``: ``(E‖δ‖², E‖δ‖⁴)`` with ``M = A P Aᵀ``, ``ν = −A m + b``:
    ``E‖δ‖² = tr M + ‖ν‖²`` and ``E‖δ‖⁴ = (tr M + ‖ν‖²)² + 2 tr(M²) + 4 νᵀMν``."""
    m_mat = a @ dist.cov @ a.T
    nu = -a @ dist.mean + b
    second = affine_sq_norm(a, b, dist.mean, dist.cov)
    fourth = second**2 + 2.0 * jnp.trace(m_mat @ m_mat) + 4.0 * nu @ m_mat @ nu
    return second, fourth


#: :func:`_affine_moments` compiled (one program per shape): for errors whose field is a closure, whose methods run
#: op by op.
_affine_moments_jit = jax.jit(_affine_moments)


@jax.tree_util.register_pytree_node_class
class AffineScoreError:
    r"""``δ(x, t) = −A_δ(t) x + b_δ(t)`` for source ``source`` (a :class:`Gaussian`) under ``schedule``.

    ``field`` is a callable ``t ↦ (A_δ(t), b_δ(t))`` — the same convention as :mod:`closed_form.laws`, so
    ``add_fields(naive_field, weight * error.field)`` is the perturbed naive field (see :func:`weighted_field`).

    A JAX pytree: the source's arrays are leaves, and so are the field's when the field is itself a pytree of arrays
    (:func:`precision_error`'s); another field (a closure) is static, compared by identity.
    """

    def __init__(self, source: Gaussian, schedule, field, name: str = "affine"):
        if not isinstance(source, Gaussian):
            raise CatcompError("AffineScoreError needs a Gaussian source (its norms are then exact).")
        self.source, self.schedule, self.field, self.name = source, schedule, field, name

    def tree_flatten(self):
        if is_array_tree(self.field):
            return (self.source, self.field), (self.schedule, _Label(self.name), None)
        return (self.source,), (self.schedule, _Label(self.name), self.field)

    def _compilable(self):
        """This error with its field as a pytree of concrete arrays (a :class:`CodiagonalField` or
        :class:`FieldSum` rewritten as the equivalent pytree), for :func:`_compiled`; ``None`` when the field is a
        closure, a value is traced or the schedule does not hash."""
        try:
            hash(self.schedule)
        except TypeError:
            return None
        form = _pytree_form(self.field)
        if not is_concrete_array_tree((self.source, form)):
            return None
        twin = object.__new__(AffineScoreError)
        twin.source, twin.schedule, twin.field, twin.name = self.source, self.schedule, form, self.name
        return twin

    @classmethod
    def tree_unflatten(cls, aux, children):
        schedule, label, static_field = aux
        obj = object.__new__(cls)
        field = children[1] if static_field is None else static_field
        obj.source, obj.schedule, obj.field, obj.name = children[0], schedule, field, label.text
        return obj

    @_compiled
    def delta(self, x, t):
        """``δ(x, t)`` for ``x`` of shape ``(..., d)``."""
        a, b = self.field(t)
        return -jnp.asarray(x) @ a.T + b

    def training_norm(self, t):
        r"""``ε(t) = ‖δ(·, t)‖_{L²(q_t)}`` with ``q_t`` the diffused source; exact."""
        return self.norm_under(self.source.noised(self.schedule, t), t)

    @_compiled
    def norm_under(self, dist: Gaussian, t):
        r"""``‖δ(·, t)‖_{L²(dist)} = (tr(A P Aᵀ) + ‖−A m + b‖²)^{1/2}``; exact."""
        a, b = self.field(t)
        return jnp.sqrt(_affine_moments_jit(a, b, dist)[0])

    @_compiled
    def fourth_moment_under(self, dist: Gaussian, t):
        r"""``E_{dist}‖δ(·, t)‖⁴``; exact (Isserlis)."""
        a, b = self.field(t)
        return _affine_moments_jit(a, b, dist)[1]

    def dsm_excess(self, path=None, n_nodes: int = 48) -> float:
        r"""``ε² = (1/T)∫₀ᵀ σ_t² E_{path(t)}‖δ(·, t)‖² dt`` (:mod:`closed_form.score_matching`): with ``path=None``
        under the diffused source — the ε-prediction loss excess training reduces — or under any Gaussian path
        ``t ↦ Gaussian`` (e.g. ``Q_t``, ``π_t``: where a sampler pays the error). Exact inner expectation,
        Gauss–Legendre in ``t`` with a convergence check."""
        path = path or diffused_path(self.source, self.schedule)
        return affine_dsm_excess(self.field, path, self.schedule, n_nodes)


class _ScaledDiagonal(FrozenPytree):
    """``t ↦ (w·a(t), w·c(t))`` for per-direction coefficients ``diagonal``; a pytree (leaves: the weight and the
    diagonal's arrays) when the diagonal is one, so that the laws compile it once per shape, not once per error."""

    _leaves = ("weight", "diagonal")

    def __init__(self, weight, diagonal):
        self._set(weight, diagonal)

    def __call__(self, t):
        return tuple(self.weight * v for v in self.diagonal(t))


def _scaled(weight, field):
    """``weight ·`` a field, keeping the per-direction structure the exact laws' fast routes need."""
    if isinstance(field, CodiagonalField):
        return CodiagonalField(field.basis, _ScaledDiagonal(weight, field.diagonal))
    if isinstance(field, FieldSum):
        return FieldSum(tuple(_scaled(weight, part) for part in field.parts))

    def scaled(t):
        a, b = field(t)
        return weight * a, weight * b

    return scaled


def weighted_field(weight: float, error: AffineScoreError):
    """The field of ``weight · δ``: what error ``δ`` of a source with composition weight ``weight`` adds to the
    composed score."""
    return _scaled(weight, error.field)


def _diffused_precision(source: Gaussian, schedule, t):
    prec = jnp.linalg.inv(diffused_covariance(schedule, source.cov, t))
    return 0.5 * (prec + prec.T), schedule.alpha(t) * source.mean


def precision_error(source: Gaussian, schedule, eps: float, sign: float = 1.0) -> AffineScoreError:
    r"""The diffused source's precision misestimated by a relative ``η(t)``: ``ŝ = −(1 + sign·η(t)) C_t⁻¹(x − α_tμ)``,
    i.e. ``δ = −sign·η(t) C_t⁻¹(x − α_t μ)``, with ``η(t) = ε / √(tr C_t⁻¹)`` so that ``‖δ‖_{L²(q_t)} = ε`` at every
    ``t`` (since ``E‖C⁻¹(x − αμ)‖² = tr C⁻¹``). The perturbed source is itself Gaussian at every ``t``."""
    check_error_size(eps)
    if sign not in (-1.0, 1.0, -1, 1):
        raise CatcompError(f"sign must be +1 or −1, got {sign!r}.")
    field = _PrecisionErrorField(source, jnp.asarray(float(sign) * float(eps)), schedule)
    return AffineScoreError(source, schedule, field, name=f"precision(ε={eps:g}, sign={sign:+g})")


class _PrecisionErrorField(FrozenPytree):
    """``t ↦ (η C_t⁻¹, η C_t⁻¹ α_t μ)`` with ``η = scale / √tr C_t⁻¹`` (:func:`precision_error`); a pytree (leaves:
    the source and the signed scale), so that errors of one shape share compiled code."""

    _leaves = ("source", "scale")
    _static = ("schedule",)

    def __init__(self, source, scale, schedule):
        self._set(source, scale, schedule)

    def __call__(self, t):
        prec, m = _diffused_precision(self.source, self.schedule, t)
        eta = self.scale / jnp.sqrt(jnp.trace(prec))
        return eta * prec, eta * prec @ m


def calibrated_affine_error(source: Gaussian, schedule, eps: float, direction) -> AffineScoreError:
    r"""An affine error along ``direction`` (a field ``t ↦ (A₀(t), b₀(t))``) rescaled at each ``t`` so that
    ``‖δ‖_{L²(q_t)} = ε``."""
    check_error_size(eps)
    base = AffineScoreError(source, schedule, direction)

    def field(t):
        a0, b0 = direction(t)
        scale = eps / base.training_norm(t)
        return scale * a0, scale * b0

    return AffineScoreError(source, schedule, field, name=f"affine(ε={eps:g})")


def misspecification_error(source: Gaussian, fitted: Gaussian, schedule) -> AffineScoreError:
    r"""``δ(x, t) = ∇log p̂_t(x) − ∇log q_t(x)``: the exact scores of the diffused fit ``p̂`` used in place of the
    source's. ``A_δ = Ĉ_t⁻¹ − C_t⁻¹``, ``b_δ = Ĉ_t⁻¹ α_t μ̂ − C_t⁻¹ α_t μ``. FKC driven by these scores targets the exact
    composition of the fits, ``Q̂``.

    With concrete means and covariances the field is the sum of the two sources' per-eigendirection fields
    (:func:`closed_form.composition.geometric_field` with weights ``(1, −1)``), which the exact laws integrate fast;
    with traced ones (Hessians in the fitted parameters) it uses explicit inverses, because the derivative of an
    eigendecomposition is undefined at repeated eigenvalues (isotropic sources)."""
    from closed_form.composition import geometric_field

    if fitted.dim != source.dim:
        raise ShapeMismatchError(f"fitted has dimension {fitted.dim}, source {source.dim}; they must match.")
    if is_concrete(fitted.mean, fitted.cov, source.mean, source.cov):
        if (np.array_equal(np.asarray(fitted.mean), np.asarray(source.mean))
                and np.array_equal(np.asarray(fitted.cov), np.asarray(source.cov))):
            # An exact fit: δ ≡ 0, as the source's field with weight 0 (exactly zero at every t, however the two
            # equal parts of the difference would be rounded in a compiled evaluation).
            return AffineScoreError(source, schedule, geometric_field([source], [0.0], schedule), name="misspecified")
        return AffineScoreError(source, schedule, geometric_field([fitted, source], [1.0, -1.0], schedule),
                                name="misspecified")

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


@jax.tree_util.register_pytree_node_class
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
        check_error_size(eps)
        if not 0.0 < gamma < 0.5:
            raise CatcompError(f"gamma must lie in (0, 1/2) for a finite training-side norm, got {gamma!r}.")
        self.source, self.schedule, self.eps, self.gamma = source, schedule, float(eps), float(gamma)
        self.u = _unit(np.ones(source.dim) if direction is None else direction, source.dim)
        self.name = f"density-power(ε={eps:g}, γ={gamma:g})"

    def tree_flatten(self):
        """A pytree: the source, ``ε``, ``γ`` and the direction are leaves; the schedule and name static."""
        return (self.source, self.eps, self.gamma, self.u), (self.schedule, _Label(self.name))

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        obj.source, obj.eps, obj.gamma, obj.u = children
        obj.schedule, obj.name = aux[0], aux[1].text
        return obj

    def _compilable(self):
        """This error when its values are concrete and the schedule hashes (for :func:`_compiled`), else ``None``."""
        try:
            hash(self.schedule)
        except TypeError:
            return None
        return self if is_concrete_array_tree(self) else None

    def _scale(self, x, t):
        prec, m = _diffused_precision(self.source, self.schedule, t)
        y = jnp.asarray(x) - m
        maha = jnp.einsum("...i,ij,...j->...", y, prec, y)
        return self.eps * jnp.exp(0.5 * self.gamma * maha + 0.25 * self.source.dim * jnp.log1p(-2 * self.gamma))

    @_compiled
    def delta(self, x, t):
        return self._scale(x, t)[..., None] * self.u

    @_compiled
    def sq_norm_under(self, dist: Gaussian, t):
        r"""``E_{dist}‖δ(·, t)‖²`` in closed form (``inf`` when not integrable)."""
        prec, m = _diffused_precision(self.source, self.schedule, t)
        mgf = _quadratic_mgf(dist.mean - m, dist.cov, self.gamma * prec)
        return self.eps**2 * (1 - 2 * self.gamma) ** (self.source.dim / 2) * mgf

    @_compiled
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


def misspecified_mixture(source: GaussianMixture, s: float) -> GaussianMixture:
    r"""A gradient-field error model for mixtures, at strength ``s``: the source misspecified at ``t = 0`` in its
    component weights, means and covariances,

    .. math:: π̂_k ∝ π_k e^{s z_k},\qquad μ̂_k = m + (1 + s)(μ_k − m),\qquad Σ̂_k = (1 + s)Σ_k,

    with ``m = Σ_k π_k μ_k`` and ``z_k = ±1`` alternating over the components of positive weight (a fixed, stated
    direction: weights tilted, components spread apart and widened). Diffused exactly, its score is a true diffusion
    score, so FKC driven by it targets the composition of the misspecified sources. ``s > −1``."""
    if not (np.isfinite(s) and s > -1.0):
        raise CatcompError(f"the misspecification strength s must be a finite number > −1, got {s!r}.")
    w = np.asarray(source.weights, dtype=np.float64)
    means = np.asarray(source.means, dtype=np.float64)
    z = np.zeros_like(w)
    z[w > 0] = np.where(np.arange(int(np.sum(w > 0))) % 2 == 0, 1.0, -1.0)
    w_hat = w * np.exp(s * z)
    m = w @ means
    return GaussianMixture(w_hat / w_hat.sum(), m + (1.0 + s) * (means - m), (1.0 + s) * np.asarray(source.covs))


class MixtureMisspecificationError:
    r"""``δ(x, t) = ∇log p̂_t(x) − ∇log q_t(x)``: the exact score of a diffused misspecified mixture ``p̂`` (e.g.
    :func:`misspecified_mixture`) in place of the source's. A gradient field at every ``t``, consistent across ``t``
    (both are diffusions), so FKC's target with it is the composition of the misspecified sources.

    Its DSM excess has no closed form: :func:`verify.analysis.montecarlo.mixture_dsm_excess_monte_carlo` estimates it.
    ``score``/``fitted_score`` are optional faster equivalents of the two exact scores ``(x, t) ↦ ∇log``
    (the samplers' compiled ones); by default each mixture's own ``noised(…).score``.
    """

    def __init__(self, source, fitted, schedule, *, score=None, fitted_score=None):
        if fitted.dim != source.dim:
            raise ShapeMismatchError(f"fitted has dimension {fitted.dim}, source {source.dim}; they must match.")
        self.source, self.fitted, self.schedule = source, fitted, schedule
        self._score = score or (lambda x, t: source.noised(schedule, t).score(x))
        self._fitted_score = fitted_score or (lambda x, t: fitted.noised(schedule, t).score(x))
        self.name = "mixture-misspecified"

    def delta(self, x, t):
        return self._fitted_score(x, t) - self._score(x, t)

class DensityRatioError:
    r"""``δ(x) = ε · u · r(x) / ‖r‖_{L²(p)}`` with ``r = dq/dp`` for Gaussians ``p`` (training) and ``q`` (sampling) at
    one time: the error that attains equality in ``E_q‖δ‖ ≤ ‖δ‖_{L²(p)} √(1 + χ²(q‖p))``, because
    ``E_q r = E_p r² = ‖r‖²_{L²(p)} = 1 + χ²(q‖p)``. Requires ``2Σ_p − Σ_q ≻ 0``."""

    def __init__(self, p: Gaussian, q: Gaussian, eps: float, direction=None):
        check_error_size(eps)
        self.p, self.q, self.eps = p, q, float(eps)
        self.ress_inverse = ress_inverse(q, p)
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
    "MixtureMisspecificationError",
    "calibrated_affine_error",
    "misspecification_error",
    "misspecified_mixture",
    "precision_error",
    "weighted_field",
]
