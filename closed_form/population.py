r"""A seeded population of random proper Gaussian compositions ``Q ∝ P_1^{w_1} P_2^{w_2} P_0^{w_0}``.

The paper's six settings and the revision's eight hand-made families are a few points of the space of compositions;
this module draws many more from stated distributions, so that a claim about compositions *in general* (which
measure predicts a catastrophic composition) can be tested on a population.

**The distribution of one draw** (:class:`PopulationSpec` holds the knobs; dimension ``d``). For each source
``P_1, P_2, P_0`` in turn, independently:

* mean ``μ ~ N(0, m² I_d)`` (``m`` = :attr:`PopulationSpec.mean_sd`);
* scale ``s = exp(σ_s z)``, ``z ~ N(0, 1)`` (lognormal, median 1; ``σ_s`` = :attr:`~PopulationSpec.scale_sd`);
* shape ``W ~ Wishart(ν, I_d)`` with ``ν = d + k`` (``k`` = :attr:`~PopulationSpec.covariance_dof`), drawn by
  Bartlett's decomposition ``W = A Aᵀ``, ``A`` lower triangular with ``A_jj = √χ²_{ν−j}`` (``j = 0, …, d−1``) and
  ``A_jl ~ N(0, 1)`` below the diagonal (so ``E W = ν I``; ``W`` is positive definite for ``ν > d − 1``);
* covariance ``Σ = s·W/ν`` (``E Σ = E s · I``), multiplied by :attr:`~PopulationSpec.base_scale` for the base
  ``P_0``.

``k`` sets the anisotropy: the eigenvalues of ``W/ν`` spread over ``(1 ± √(d/ν))²`` (Marchenko–Pastur), so a
small ``k`` gives elongated, ill-conditioned sources and a large one nearly isotropic ones. The base is broader
than the conditionals by default (``base_scale = 2``), as an unconditional law that covers its conditionals is:
with ``base_scale = 1`` and weights ``(1, 1, −1)`` in ``d = 8`` about 90 % of the draws are improper (the
conditionals' precisions rarely dominate an equally sharp base in every direction), and the accepted ones are a
thin, nearly improper slice; with 2 about 66 %.

**Weights.** Member ``index`` uses ``weights[index % len(weights)]``: by default the paper's ``(1, 1, −1)``, a
milder negative weight ``(1, 1, −0.5)``, an unequal one ``(2, 1, −1)`` and the geometric mean of the two
conditionals ``(0.5, 0.5, 0)`` (always proper; ``P_0`` then plays no part in ``Q``).

**Rejection.** A draw is improper when ``Σ_i w_i Σ_i⁻¹`` is not positive definite (``Q`` is not a density); it is
discarded, counted in :attr:`Member.rejected`, and the next draw of the same stream is tried, so an accepted
member follows the stated distribution *conditioned on being proper*. After :attr:`~PopulationSpec.max_tries`
improper draws :class:`PopulationRejectionError` says what to change.

**Seeds.** Member ``(dim, index)`` draws from ``numpy.random.default_rng([seed, dim, index])`` alone, so any member
is reproduced on its own (:func:`population_member`) and chunks of a population compute independently.

:func:`named_members` gives the named members beside the random ones: the paper's four Gaussian settings (exactly
:func:`closed_form.paper_setting`) and configurations of the revision's families (:mod:`closed_form.families`).
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from closed_form.errors import CatcompError, ImproperCompositionError, InvalidWeightsError
from closed_form.families import FAMILY_NAMES, FAMILY_SOURCE_LABELS, family_configs
from closed_form.gaussian import Gaussian
from closed_form.settings import GAUSSIAN_SETTING_NAMES, PAPER_WEIGHTS, Setting, paper_setting

#: The default weight triples ``(w_1, w_2, w_0)``; member ``i`` uses ``weights[i % len(weights)]``.
POPULATION_WEIGHTS = ((1.0, 1.0, -1.0), (1.0, 1.0, -0.5), (2.0, 1.0, -1.0), (0.5, 0.5, 0.0))
#: Labels of a random member's sources, in the order of its weights.
POPULATION_SOURCE_LABELS = ("P_1", "P_2", "P_0")
#: The report sizes :func:`named_members` knows.
SIZES = ("quick", "default", "paper")
#: Knob positions (0–19 on each family's grid) of the family members at each size: both ends of every grid at
#: ``quick``, the ends and the middle at ``default``, the whole grid at ``paper``.
FAMILY_INDICES = {"quick": (0, 19), "default": (0, 10, 19), "paper": tuple(range(20))}

_RANDOM_NAME = re.compile(r"pop_d(\d+)_(\d+)")


class PopulationRejectionError(ImproperCompositionError):
    """Every one of ``max_tries`` draws for a population member was improper (``Σ_i w_i Σ_i⁻¹`` not positive
    definite); ``dim``, ``index``, ``weights`` and ``tries`` say which member."""

    def __init__(self, message: str, *, dim: int, index: int, weights: tuple, tries: int):
        super().__init__(message)
        self.dim, self.index, self.weights, self.tries = dim, index, weights, tries


def weights_label(weights) -> str:
    """A weight triple as the string the population's frames carry, e.g. ``"(1, 1, -1)"``."""
    return "(" + ", ".join(f"{float(w):g}" for w in weights) + ")"


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def _finite_at_least(value, name: str, low: float, strict: bool) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)
    if ok:
        ok = value > low if strict else value >= low
    if not ok:
        rel = ">" if strict else "≥"
        raise CatcompError(f"{name} must be a finite number {rel} {low:g}, got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class PopulationSpec:
    """What a population is drawn from (module doc).

    Attributes
    ----------
    dims : tuple of int
        Dimensions, each ≥ 1, distinct (default ``(2, 4, 8)``).
    n_per_dim : int
        Random members per dimension (≥ 0).
    weights : tuple of weight triples
        ``(w_1, w_2, w_0)`` each, finite, at least one positive; member ``i`` uses ``weights[i % len(weights)]``.
    covariance_dof : float
        ``k ≥ 0``: the Wishart degrees of freedom above ``d`` (``ν = d + k``); smaller is more anisotropic.
    scale_sd : float
        ``σ_s ≥ 0``: the standard deviation of each source's log scale.
    mean_sd : float
        ``m ≥ 0``: the standard deviation of each mean entry.
    base_scale : float
        ``> 0``: the factor on the base ``P_0``'s covariance.
    seed : int
        ``≥ 0``; member ``(dim, index)`` draws from ``numpy.random.default_rng([seed, dim, index])``.
    max_tries : int
        ``≥ 1``: draws per member; when all of them are improper, :class:`PopulationRejectionError`.

    Raises
    ------
    CatcompError
        For any invalid field (:class:`~closed_form.errors.InvalidWeightsError` for the weights); the message says
        what is valid.
    """

    dims: tuple = (2, 4, 8)
    n_per_dim: int = 8
    weights: tuple = POPULATION_WEIGHTS
    covariance_dof: float = 8.0
    scale_sd: float = 0.5
    mean_sd: float = 1.0
    base_scale: float = 2.0
    seed: int = 0
    max_tries: int = 1000

    def __post_init__(self):
        dims = self.dims
        if isinstance(dims, (str, bytes)) or not hasattr(dims, "__iter__"):
            raise CatcompError(f"dims must be a sequence of integers ≥ 1, got {dims!r}.")
        dims = tuple(dims)
        if not dims or not all(_is_int(d) and d >= 1 for d in dims) or len(set(dims)) != len(dims):
            raise CatcompError(f"dims must be a non-empty sequence of distinct integers ≥ 1, got {self.dims!r}.")
        object.__setattr__(self, "dims", tuple(int(d) for d in dims))
        if not (_is_int(self.n_per_dim) and self.n_per_dim >= 0):
            raise CatcompError(f"n_per_dim must be an integer ≥ 0, got {self.n_per_dim!r}.")
        object.__setattr__(self, "weights", _check_weights(self.weights))
        for name, strict in (("covariance_dof", False), ("scale_sd", False), ("mean_sd", False),
                             ("base_scale", True)):
            object.__setattr__(self, name, _finite_at_least(getattr(self, name), name, 0.0, strict))
        if not (_is_int(self.seed) and self.seed >= 0):
            raise CatcompError(f"seed must be an integer ≥ 0, got {self.seed!r}.")
        if not (_is_int(self.max_tries) and self.max_tries >= 1):
            raise CatcompError(f"max_tries must be an integer ≥ 1, got {self.max_tries!r}.")

    def weights_of(self, index: int) -> tuple:
        """The weight triple of member ``index``: ``weights[index % len(weights)]``."""
        return self.weights[int(index) % len(self.weights)]


def _check_weights(weights) -> tuple:
    try:
        triples = [np.asarray(w, dtype=np.float64) for w in weights]
    except (TypeError, ValueError) as err:
        raise InvalidWeightsError(f"weights must be a sequence of triples (w_1, w_2, w_0) of finite numbers, got "
                                  f"{weights!r}.") from err
    if not triples:
        raise InvalidWeightsError("weights must hold at least one triple (w_1, w_2, w_0).")
    for w in triples:
        if w.shape != (3,) or not np.all(np.isfinite(w)):
            raise InvalidWeightsError(f"each weight triple must be three finite numbers (w_1, w_2, w_0), got "
                                      f"{w.tolist()!r}.")
        if not np.any(w > 0):
            raise InvalidWeightsError(f"weight triple {w.tolist()!r} has no positive entry, so no draw can be "
                                      "proper; give at least one positive weight.")
    return tuple(tuple(float(x) for x in w) for w in triples)


def wishart_bartlett(rng: np.random.Generator, nu: float, dim: int) -> np.ndarray:
    """``W ~ Wishart(ν, I_d)`` by Bartlett's decomposition ``W = A Aᵀ`` (module doc): ``A_jj = √χ²_{ν−j}``, ``A_jl ~
    N(0, 1)`` for ``l < j``, drawn row by row (the diagonal entry, then the row's normals). Needs ``ν > d − 1``."""
    a = np.zeros((dim, dim))
    for j in range(dim):
        a[j, j] = math.sqrt(rng.chisquare(nu - j))
        a[j, :j] = rng.standard_normal(j)
    return a @ a.T


def draw_sources(rng: np.random.Generator, spec: PopulationSpec, dim: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """One draw of ``(mean, cov)`` for ``P_1, P_2, P_0`` in turn (module doc), proper or not; per source the mean,
    then the log scale, then the Wishart shape are taken from ``rng``."""
    nu = dim + spec.covariance_dof
    out = []
    for i in range(3):
        mean = spec.mean_sd * rng.standard_normal(dim)
        scale = math.exp(spec.scale_sd * rng.standard_normal())
        cov = scale * wishart_bartlett(rng, nu, dim) / nu
        if i == 2:
            cov = spec.base_scale * cov
        out.append((mean, 0.5 * (cov + cov.T)))
    return out


def _proper_setting(name: str, draw, weights) -> Setting | None:
    """The member's setting if the draw composes to a proper ``Q``, else ``None``."""
    lam = sum(w * np.linalg.inv(cov) for w, (_, cov) in zip(weights, draw))
    if np.linalg.eigvalsh(0.5 * (lam + lam.T))[0] <= 0:
        return None
    try:
        return Setting(name, [Gaussian(m, c) for m, c in draw], weights, POPULATION_SOURCE_LABELS)
    except ImproperCompositionError:  # compose's own test at the boundary of the cone
        return None


def member_rng(spec: PopulationSpec, dim: int, index: int) -> np.random.Generator:
    """The stream member ``(dim, index)`` draws from: ``numpy.random.default_rng([seed, dim, index])``."""
    return np.random.default_rng([spec.seed, int(dim), int(index)])


@dataclass(frozen=True)
class Member:
    """One random member: ``setting`` (named ``pop_d{dim}_{index:03d}``, sources ``P_1, P_2, P_0``), its ``dim``,
    ``index`` and ``weights``, and ``rejected``, the improper draws discarded before it was accepted."""

    setting: Setting
    dim: int
    index: int
    weights: tuple
    rejected: int


def population_member(spec: PopulationSpec, dim: int, index: int) -> Member:
    """Member ``(dim, index)`` of the population ``spec`` describes: the first proper draw of its own stream
    (:func:`member_rng`), so the same arguments always give the same member.

    Raises
    ------
    CatcompError
        For ``dim`` not in ``spec.dims`` or ``index`` outside ``[0, n_per_dim)``.
    PopulationRejectionError
        When ``spec.max_tries`` draws in a row are improper.
    """
    if not isinstance(spec, PopulationSpec):
        raise CatcompError(f"spec must be a PopulationSpec, got {type(spec).__name__}.")
    if not (_is_int(dim) and dim in spec.dims):
        raise CatcompError(f"dim must be one of the spec's dims {spec.dims}, got {dim!r}.")
    if not (_is_int(index) and 0 <= index < spec.n_per_dim):
        raise CatcompError(f"index must be an integer in [0, {spec.n_per_dim}) (n_per_dim = {spec.n_per_dim}), "
                           f"got {index!r}.")
    dim, index = int(dim), int(index)
    weights = spec.weights_of(index)
    name = f"pop_d{dim}_{index:03d}"
    rng = member_rng(spec, dim, index)
    for tries in range(spec.max_tries):
        setting = _proper_setting(name, draw_sources(rng, spec, dim), weights)
        if setting is not None:
            return Member(setting, dim, index, weights, tries)
    raise PopulationRejectionError(
        f"member {name}: all {spec.max_tries} draws with weights {weights_label(weights)} were improper "
        f"(Σ_i w_i Σ_i⁻¹ not positive definite). Raise max_tries (now {spec.max_tries}), raise covariance_dof (now "
        f"{spec.covariance_dof:g}: less anisotropic sources) or base_scale (now {spec.base_scale:g}: a broader "
        "P_0), or use weights with a smaller negative part.", dim=dim, index=index, weights=weights,
        tries=spec.max_tries)


@dataclass(frozen=True)
class Population:
    """The random members of a :class:`PopulationSpec`, dimension by dimension, with their rejection counts."""

    spec: PopulationSpec
    members: tuple = field(default_factory=tuple)

    @property
    def rejected(self) -> int:
        """Improper draws discarded over the whole population."""
        return sum(m.rejected for m in self.members)

    @property
    def draws(self) -> int:
        """Draws made: the members plus the improper draws discarded."""
        return len(self.members) + self.rejected

    @property
    def settings(self) -> tuple:
        return tuple(m.setting for m in self.members)

    def member_frame(self) -> pd.DataFrame:
        """One row per member: ``setting``, ``dim``, ``index``, ``weights`` (string), ``rejected``."""
        return pd.DataFrame([{"setting": m.setting.name, "dim": m.dim, "index": m.index,
                              "weights": weights_label(m.weights), "rejected": m.rejected} for m in self.members],
                            columns=["setting", "dim", "index", "weights", "rejected"])

    def to_frame(self) -> pd.DataFrame:
        """Per ``(dim, weights)``: ``members``, ``draws``, ``rejected`` and ``rejection_rate = rejected / draws``
        (in the spec's order of dimensions and weights; a pair with no member is left out)."""
        rows = []
        for dim in self.spec.dims:
            for w in self.spec.weights:
                part = [m for m in self.members if m.dim == dim and m.weights == w]
                if not part:
                    continue
                rej = sum(m.rejected for m in part)
                rows.append({"dim": dim, "weights": weights_label(w), "members": len(part),
                             "draws": len(part) + rej, "rejected": rej, "rejection_rate": rej / (len(part) + rej)})
        return pd.DataFrame(rows, columns=["dim", "weights", "members", "draws", "rejected", "rejection_rate"])


def random_population(spec: PopulationSpec) -> Population:
    """Every member ``(dim, index)``, ``dim`` in ``spec.dims`` and ``index < spec.n_per_dim``
    (:func:`population_member`).

    Raises
    ------
    PopulationRejectionError
        If a member exhausts ``spec.max_tries``.
    """
    if not isinstance(spec, PopulationSpec):
        raise CatcompError(f"spec must be a PopulationSpec, got {type(spec).__name__}.")
    return Population(spec, tuple(population_member(spec, d, i) for d in spec.dims for i in range(spec.n_per_dim)))


def family_member_name(family: str, index: int) -> str:
    """The name of configuration ``index`` of family ``family`` as a named member: ``family-<family>-<index:02d>``
    (a setting name allows letters, digits and ``_ . + -`` only)."""
    return f"family-{family}-{int(index):02d}"


def named_members(size: str = "default") -> tuple[Setting, ...]:
    """The named members at report size ``size`` (one of :data:`SIZES`): the paper's four Gaussian settings
    (:func:`closed_form.paper_setting`, the same objects), then, for each family of :data:`FAMILY_NAMES`, the
    configurations at :data:`FAMILY_INDICES` ``[size]`` as settings named by :func:`family_member_name` (sources
    labelled ``A, B, 0``, weights ``(1, 1, −1)``).

    Raises
    ------
    CatcompError
        For an unknown size.
    """
    if size not in SIZES:
        raise CatcompError(f"unknown size {size!r}; valid sizes are {', '.join(SIZES)}.")
    out = [paper_setting(name) for name in GAUSSIAN_SETTING_NAMES]
    for family in FAMILY_NAMES:
        configs = family_configs(family)
        for i in FAMILY_INDICES[size]:
            c = configs[i]
            out.append(Setting(family_member_name(family, i), c.sources, PAPER_WEIGHTS, FAMILY_SOURCE_LABELS))
    return tuple(out)


def member_kind(setting) -> str:
    """``"random"`` (named ``pop_d…``), ``"paper"`` (a Gaussian paper setting's name), ``"family"`` (named
    ``family-…``) or ``"custom"``."""
    name = setting.name
    if _RANDOM_NAME.fullmatch(name):
        return "random"
    if name in GAUSSIAN_SETTING_NAMES:
        return "paper"
    if name.startswith("family-"):
        return "family"
    return "custom"


__all__ = ["FAMILY_INDICES", "Member", "POPULATION_SOURCE_LABELS", "POPULATION_WEIGHTS", "Population",
           "PopulationRejectionError", "PopulationSpec", "SIZES", "draw_sources", "family_member_name", "member_kind",
           "member_rng", "named_members", "population_member", "random_population", "weights_label",
           "wishart_bartlett"]
