r"""Diagnose a composition of one's own: :func:`diagnose` answers, for any Gaussian or Gaussian-mixture composition
``Q ∝ Π_i P_i^{w_i}``, how far the target lies outside its sources, how biased each sampler is, how many particles
FKC needs and what an estimation error of the sources costs.

What a :class:`Diagnosis` holds, and how each number is obtained:

* **the target** ``Q``: closed form where it exists (Gaussian sources; mixtures with non-negative integer weights),
  otherwise the exact sampler (:meth:`closed_form.Composition.sample_target`) and the normalizer (cubature, in
  d ≤ 2);
* **per source, the OOD measures**: ``log(1 + χ²(Q‖P_i))`` (``∞`` allowed: ``2Σ_i − Σ_Q`` not positive definite)
  and ``Q``'s mass outside the source's ``level`` highest-density region — exact for Gaussians
  (:mod:`closed_form.ood`), Monte Carlo with standard errors for mixtures (:mod:`verify.analysis.montecarlo`);
* **per sampler**: the naive reverse SDE in continuous time (started at ``N(0, I)`` at ``T``, stopped at
  ``t_min``) and by Euler–Maruyama on the samplers' grid (``n_steps`` steps clamped to ``[eps, T − eps]``), the
  probability-flow ODE (continuous time), and FKC's ``K → ∞`` law on the same grid: ``KL(Q‖law)`` and ``W₂`` exact
  for Gaussian sources (:mod:`closed_form.laws`, :func:`closed_form.fkc_limit_law`, :mod:`closed_form.divergences`).
  For mixtures the sampler laws have no density, so their draws are compared with exact draws of ``Q`` by the
  sliced ``W₂`` (mean ± standard error over independent runs, with its own floor: two exact samples of ``Q``);
  ``KL`` is not available there and is left empty, with the reason;
* **the particles needed**: pilot runs of :func:`verify.samplers.fkc_sample` (exact scores, start ``N(0, I)``,
  resampling every step, no clipping: the sampler whose limit :func:`~closed_form.fkc_limit_law` gives) at a few
  ``K``; per statistic (``E‖x‖²`` and ``log Ẑ`` of each swarm's weighted cloud, averaged over swarms), the gap
  to the exact limit is fitted as ``c/K`` by weighted least squares (the intercept fixed at the exact limit; for
  mixtures, which have no exact limit, ``a + c/K`` with ``a`` fitted), and the smallest ``K`` with
  ``|c|/K ≤ tolerance`` is reported with the range that ``c ± t·SE(c)`` gives. :meth:`Diagnosis.check_particles`
  runs FKC at that ``K`` and compares;
* **the estimation-error side** (Gaussian sources): the worst-case amplification ``λ_max = sup KL(Q‖Q̂)/ε²`` and
  the crossover ``ε`` at which a misspecification costs as much as the naive sampler's bias
  (:mod:`theory.amplification`), and :meth:`Diagnosis.misspecified` for an error stated in the user's units (a
  covariance scale, a mean shift): ``KL(Q‖Q̂)``, the DSM excess ``ε²`` it corresponds to (averaged over the
  sources, as :mod:`theory.amplification` defines it) and the ratio ``KL/ε²`` against ``λ_max``.

``str(d)`` is a one-screen summary; :meth:`~Diagnosis.to_frame`, :meth:`~Diagnosis.to_markdown` and
:meth:`~Diagnosis.to_latex` (booktabs) give it as data and tables. ``python -m verify diagnose FILE.toml`` runs
:func:`diagnose` on every setting of a settings file (:mod:`closed_form.settings_file`).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from closed_form import Gaussian, VPSchedule, as_setting
from closed_form.errors import CatcompError, ImproperCompositionError, NoClosedFormError, WeightsNotIntegrableError

#: Statistics of each swarm's weighted cloud whose bias over FKC's limit sets the particles needed.
PARTICLE_STATISTICS = ("second_moment", "log_z")
_STAT_LABEL = {"second_moment": "E‖x‖²", "log_z": "log Z\u0302"}


# ------------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class SourceOOD:
    """How far ``Q`` lies outside one source: ``log(1 + χ²(Q‖P))`` and ``Q``'s mass outside ``P``'s HDR (``se``
    zero where exact)."""

    label: str
    log1p_chi2: float
    log1p_chi2_se: float
    outside_hdr: float
    outside_hdr_se: float
    method: str


@dataclass(frozen=True)
class SamplerError:
    """One sampler's error against ``Q``: ``KL(Q‖law)`` (NaN where not available, with ``note``) and ``W₂``."""

    sampler: str
    kl: float
    kl_se: float
    w2: float
    w2_se: float
    method: str
    note: str = ""


@dataclass(frozen=True)
class ParticleEstimate:
    """The particles FKC needs for one statistic: its fitted bias ``c/K`` over the limit and the smallest ``K``
    with ``|c|/K ≤ tolerance`` (``k``), with the range ``[k_low, k_high]`` from ``|c| ∓ t·SE(c)``."""

    statistic: str
    tolerance: float
    limit: float
    limit_exact: bool
    c: float
    c_se: float
    t: float
    k: int
    k_low: int
    k_high: int

    def predicted_excess(self, k: int) -> float:
        """``|c|/K``: the predicted bias of the statistic over FKC's limit at ``K`` particles."""
        return abs(self.c) / int(k)


def _k_for(c_abs: float, tolerance: float) -> int:
    return max(1, math.ceil(c_abs / tolerance - 1e-12)) if c_abs > 0 else 1


@dataclass(frozen=True)
class Misspecification:
    """The cost of misspecified Gaussian sources ``P̂_i = N(μ_i + Δμ_i, s_i Σ_i)`` (:meth:`Diagnosis.misspecified`).

    ``kl`` is ``KL(Q‖Q̂)`` (``∞`` where ``Q̂`` is improper), ``eps2`` the DSM excess ``(1/n) Σ_i ε_i²`` of the
    misspecified scores (``per_source`` lists each ``ε_i²``), ``ratio = kl / eps2`` to compare with
    ``lambda_max``, and ``kl_naive`` the KL of the naive reverse SDE driven by the misspecified scores.
    """

    per_source: pd.DataFrame
    eps2: float
    kl: float
    lambda_max: float
    kl_naive: float
    kl_naive_exact_scores: float

    @property
    def eps(self) -> float:
        return math.sqrt(self.eps2)

    @property
    def ratio(self) -> float:
        return self.kl / self.eps2 if self.eps2 > 0 else math.inf

    def to_frame(self) -> pd.DataFrame:
        return self.per_source.copy()

    def __str__(self) -> str:
        rows = "\n".join(f"  {r.label:>12}: variance ×{r.cov_scale:g}, mean shift |Δμ| = {r.mean_shift_norm:.4g}, "
                         f"DSM excess ε_i² = {r.dsm_excess:.4g}" for r in self.per_source.itertuples())
        return (f"misspecified sources:\n{rows}\n"
                f"  ε² = mean_i ε_i² = {self.eps2:.4g} (ε = {self.eps:.4g})\n"
                f"  KL(Q‖Q̂) = {self.kl:.4g}; KL/ε² = {self.ratio:.4g} (worst case λ_max = {self.lambda_max:.4g}, "
                f"{self.ratio / self.lambda_max:.3g} of it)\n"
                f"  naive SDE with these scores: KL(Q‖law) = {self.kl_naive:.4g} "
                f"(exact scores: {self.kl_naive_exact_scores:.4g})")


# ------------------------------------------------------------------------------------------------ helpers
def _key(seed):
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return jax.random.key(int(seed))
    if isinstance(seed, jax.Array) and jax.dtypes.issubdtype(seed.dtype, jax.dtypes.prng_key):
        return seed
    raise CatcompError(f"seed must be an int or a jax.random.key(...), got {type(seed).__name__}.")


def _swarm_statistics(out) -> dict:
    """Per swarm, the weighted-cloud ``E‖x‖²`` and ``log Ẑ``."""
    x = np.asarray(out.particles)
    w = np.exp(np.asarray(out.log_weights))
    return {"second_moment": np.einsum("sk,ski,ski->s", w, x, x), "log_z": np.asarray(out.log_normalizer)}


def _fit_c_over_k(ks, gaps, ses):
    """Weighted least squares of ``gap_K ≈ c/K`` (weights ``1/se²``): ``(c, se(c))``."""
    x = 1.0 / np.asarray(ks, dtype=np.float64)
    w = 1.0 / np.maximum(np.asarray(ses), 1e-300) ** 2
    sxx = float(np.sum(w * x * x))
    return float(np.sum(w * x * np.asarray(gaps)) / sxx), float(1.0 / np.sqrt(sxx))


def _fit_a_plus_c_over_k(ks, values, ses):
    """Weighted least squares of ``value_K ≈ a + c/K``: ``(a, se(a), c, se(c))``."""
    k = np.asarray(ks, dtype=np.float64)
    x = np.stack([np.ones_like(k), 1.0 / k], axis=1)
    w = 1.0 / np.maximum(np.asarray(ses), 1e-300) ** 2
    cov = np.linalg.inv(x.T @ (w[:, None] * x))
    beta = cov @ (x.T @ (w * np.asarray(values)))
    return float(beta[0]), float(np.sqrt(cov[0, 0])), float(beta[1]), float(np.sqrt(cov[1, 1]))


def _per_source(value, n, labels, dim, what):
    """``value`` expanded to one entry per source: a scalar/vector for all, a sequence of ``n``, or a mapping by
    label (sources it does not name get ``None``)."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(labels))
        if unknown:
            raise CatcompError(f"{what} names unknown source(s) {unknown}; the sources are {list(labels)}.")
        return [value.get(lab) for lab in labels]
    arr = np.asarray(value, dtype=np.float64)
    if what == "cov_scale":
        if arr.ndim == 0:
            return [float(arr)] * n
        if arr.shape == (n,):
            return [float(v) for v in arr]
        raise CatcompError(f"cov_scale must be one number, {n} numbers (one per source) or a mapping label → number; "
                           f"got shape {arr.shape}.")
    if arr.ndim == 0 or arr.shape == (dim,):
        return [arr] * n
    if arr.shape == (n, dim):
        return list(arr)
    raise CatcompError(f"mean_shift must be a number (a shift of that length along (1, …, 1)/√d), a vector of "
                       f"length {dim}, an array of shape ({n}, {dim}) (one per source) or a mapping label → shift; "
                       f"got shape {arr.shape}.")


def _shift_vector(value, dim):
    if value is None:
        return np.zeros(dim)
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return float(arr) * np.ones(dim) / math.sqrt(dim)
    if arr.shape != (dim,):
        raise CatcompError(f"a mean shift must be a number or a vector of length {dim}, got shape {arr.shape}.")
    return arr


# ------------------------------------------------------------------------------------------------ Diagnosis
@dataclass
class Diagnosis:
    """What :func:`diagnose` found (module doc). Fields are plain data; the methods render or extend them."""

    setting: object
    schedule: object
    n_steps: int
    t_min: float
    eps: float
    seed: object
    tolerance: float
    target: object = None
    target_method: str = ""
    log_normalizer: float | None = None
    target_note: str = ""
    ood: list = field(default_factory=list)
    samplers: list = field(default_factory=list)
    fkc_limit: object = None
    fkc_log_mass_expected: float | None = None
    pilot: pd.DataFrame | None = None
    particles: list | None = None
    particles_note: str = ""
    _amplification: object = None
    _crossover: object = None

    # -------------------------------------------------------------- derived quantities
    @property
    def composition(self):
        return self.setting.composition

    @property
    def is_gaussian(self) -> bool:
        return self.setting.is_gaussian

    def sampler(self, name: str) -> SamplerError:
        """The :class:`SamplerError` of sampler ``name`` (see ``[s.sampler for s in d.samplers]``)."""
        for s in self.samplers:
            if s.sampler == name:
                return s
        raise CatcompError(f"no sampler {name!r}; this diagnosis has {[s.sampler for s in self.samplers]}.")

    @property
    def amplification(self):
        """:func:`theory.amplification.amplification` of the composition (computed on first use; Gaussian sources)."""
        if self._amplification is None:
            from theory.amplification import amplification

            self.setting.require_gaussian("the amplification λ_max")
            self._amplification = amplification(self.composition, self.schedule)
        return self._amplification

    @property
    def lambda_max(self) -> float:
        return float(self.amplification.value)

    @property
    def crossover(self):
        """:func:`theory.amplification.crossover` at the level of the naive SDE's ``KL(Q‖law)`` (continuous time,
        ``t_min``): the smallest training-side ``ε`` whose worst misspecification costs as much as naive
        composition's bias (computed on first use; Gaussian sources)."""
        if self._crossover is None:
            from theory.amplification import crossover

            level = self.sampler("naive SDE (continuous)").kl
            self._crossover = crossover(self.composition, self.schedule, level, amp=self.amplification,
                                        t_min=self.t_min)
        return self._crossover

    def particles_needed(self, tolerance: float) -> list[ParticleEstimate]:
        """The particles needed at another ``tolerance`` (same pilot runs and fits)."""
        if self.particles is None:
            raise CatcompError(f"no pilot runs in this diagnosis ({self.particles_note or 'particles=False'}); call "
                               "diagnose(..., particles=True).")
        if not (tolerance > 0 and math.isfinite(tolerance)):
            raise CatcompError(f"tolerance must be a finite positive number, got {tolerance!r}.")
        out = []
        for p in self.particles:
            out.append(ParticleEstimate(p.statistic, float(tolerance), p.limit, p.limit_exact, p.c, p.c_se, p.t,
                                        _k_for(abs(p.c), tolerance), _k_for(max(abs(p.c) - p.t * p.c_se, 0.0),
                                                                              tolerance),
                                        _k_for(abs(p.c) + p.t * p.c_se, tolerance)))
        return out

    @property
    def k_needed(self) -> int | None:
        """The particles needed for every statistic at :attr:`tolerance` (the largest point estimate)."""
        return None if not self.particles else max(p.k for p in self.particles)

    def check_particles(self, k: int | None = None, *, n_swarms: int = 1000, seed=None) -> pd.DataFrame:
        """Run FKC at ``K`` (default :attr:`k_needed`) with ``n_swarms`` swarms and compare each statistic's gap to
        the limit with the tolerance: ``within`` is ``|gap| ≤ tolerance + t·SE`` (one-sided ``t`` at
        :data:`verify.analysis.stats.ALPHA`), the Monte Carlo check of the particle count."""
        from verify.analysis.stats import t_quantile

        if self.particles is None:
            raise CatcompError("no particle estimate to check; call diagnose(..., particles=True).")
        k = int(self.k_needed if k is None else k)
        key = jax.random.fold_in(_key(self.seed if seed is None else seed), 1_000_003)
        values = self._run_fkc(key, k, n_swarms)
        rows = []
        t = t_quantile(n_swarms - 1)
        for p in self.particles:
            v = values[p.statistic]
            mean, se = float(np.mean(v)), float(np.std(v, ddof=1) / np.sqrt(len(v)))
            gap = mean - p.limit
            rows.append({"statistic": p.statistic, "K": k, "n_swarms": n_swarms, "mc": mean, "se": se,
                         "limit": p.limit, "gap": gap, "predicted": p.c / k, "tolerance": p.tolerance,
                         "within": bool(abs(gap) <= p.tolerance + t * se)})
        return pd.DataFrame(rows)

    def _run_fkc(self, key, k, n_swarms):
        from verify.samplers import fkc_sample, source_scores

        comp = self.composition
        out = fkc_sample(key, source_scores(comp, self.schedule), comp.weights, self.schedule, int(n_swarms), int(k),
                         n_steps=self.n_steps, eps=self.eps)
        return _swarm_statistics(out)

    # -------------------------------------------------------------- misspecification
    def misspecified(self, cov_scale=1.0, mean_shift=0.0) -> Misspecification:
        """The cost of sources misspecified in the user's units: ``P̂_i = N(μ_i + Δμ_i, s_i Σ_i)``.

        Parameters
        ----------
        cov_scale : float, sequence (one per source) or mapping label → float
            ``s_i``: 1.05 is a 5 % error in every variance.
        mean_shift : float, vector (d,), array (n, d) or mapping label → float or vector
            ``Δμ_i``; a number ``m`` is a shift of length ``|m|`` along ``(1, …, 1)/√d``.

        Raises
        ------
        NotGaussianSettingError
            For mixture sources.
        NotPositiveDefiniteError
            For a scale that is not positive.
        """
        from closed_form import compose, kl, sde_law
        from closed_form.composition import geometric_field
        from closed_form.perturbations import misspecification_error

        self.setting.require_gaussian("d.misspecified")
        comp, labels = self.composition, self.setting.labels
        n, d = len(comp.sources), comp.dim
        scales = [1.0 if s is None else float(s) for s in _per_source(cov_scale, n, labels, d, "cov_scale")]
        shifts = [_shift_vector(m, d) for m in _per_source(mean_shift, n, labels, d, "mean_shift")]
        for lab, s in zip(labels, scales):
            if not (s > 0 and math.isfinite(s)):
                raise CatcompError(f"cov_scale of source {lab!r} must be a finite positive number, got {s!r}.")
        fits = [Gaussian(np.asarray(g.mean) + dm, s * np.asarray(g.cov)) for g, s, dm in zip(comp.sources, scales,
                                                                                            shifts)]
        excess = [misspecification_error(g, f, self.schedule).dsm_excess() for g, f in zip(comp.sources, fits)]
        try:
            kl_target = float(kl(comp.target, compose(fits, comp.weights).target))
        except ImproperCompositionError:
            kl_target = math.inf
        start = Gaussian.standard(d)
        naive = sde_law(geometric_field(fits, comp.weights, self.schedule), self.schedule, start, t_min=self.t_min)
        per = pd.DataFrame({"label": list(labels), "cov_scale": scales,
                            "mean_shift_norm": [float(np.linalg.norm(m)) for m in shifts], "dsm_excess": excess})
        return Misspecification(per, float(np.mean(excess)), kl_target, self.lambda_max,
                                float(kl(comp.target, naive)), self.sampler("naive SDE (continuous)").kl)

    # -------------------------------------------------------------- rendering
    def to_frame(self) -> pd.DataFrame:
        """Every number as a tidy frame: ``section, item, quantity, value, se, method`` (``se`` 0 where exact)."""
        rows = []

        def add(section, item, quantity, value, se=0.0, method="exact"):
            rows.append({"setting": self.setting.name, "section": section, "item": item, "quantity": quantity,
                         "value": float(value) if value is not None else math.nan,
                         "se": float(se) if se is not None else 0.0, "method": method})

        add("target", "Q", "log Z", self.log_normalizer, method=self.target_method)
        for o in self.ood:
            add("ood", o.label, "log(1+χ²(Q‖P))", o.log1p_chi2, o.log1p_chi2_se, o.method)
            add("ood", o.label, "Q mass outside HDR", o.outside_hdr, o.outside_hdr_se, o.method)
        for s in self.samplers:
            add("samplers", s.sampler, "KL(Q‖law)", s.kl, s.kl_se, s.method)
            add("samplers", s.sampler, "W₂", s.w2, s.w2_se, s.method)
        for p in self.particles or ():
            stat = _STAT_LABEL[p.statistic]
            add("particles", stat, "c (bias·K)", p.c, p.c_se, "fit")
            add("particles", stat, "K needed", p.k, method="fit")
            add("particles", stat, "K low", p.k_low, method="fit")
            add("particles", stat, "K high", p.k_high, method="fit")
        if self._amplification is not None:
            add("estimation", "worst case", "λ_max", self.lambda_max)
        if self._crossover is not None:
            add("estimation", "worst case", "crossover ε", self._crossover.eps)
        return pd.DataFrame(rows)

    def _section_frames(self):
        frame = self.to_frame()
        titles = {"target": "target", "ood": "per source: how far Q lies outside it",
                  "samplers": "per sampler: error against Q", "particles": f"FKC particles needed (tolerance "
                                                                           f"{self.tolerance:g})",
                  "estimation": "estimation error"}
        for section, part in frame.groupby("section", sort=False):
            yield section, titles[section], part

    def to_markdown(self) -> str:
        """The diagnosis as Markdown: a heading and one table per section (value ± SE where Monte Carlo)."""
        out = [f"# Diagnosis of `{self.setting.name}`", "", self._header_text(), ""]
        for _, title, part in self._section_frames():
            quantities = list(dict.fromkeys(part["quantity"]))
            items = list(dict.fromkeys(part["item"]))
            out += [f"## {title}", "", "| | " + " | ".join(quantities) + " |",
                    "|---|" + "---:|" * len(quantities)]
            for item in items:
                cells = []
                for q in quantities:
                    row = part[(part["item"] == item) & (part["quantity"] == q)]
                    cells.append("–" if row.empty else _plain(row["value"].iloc[0], row["se"].iloc[0]))
                out.append(f"| {item} | " + " | ".join(cells) + " |")
            out.append("")
        return "\n".join(out)

    def to_latex(self) -> str:
        """The diagnosis as booktabs LaTeX tables, one per section (``\\usepackage{booktabs}``)."""
        from verify.report.tables import Column, TableSpec, render_table

        parts = []
        for section, title, part in self._section_frames():
            spec = TableSpec(f"diagnosis_{self.setting.name}_{section}",
                             f"{self.setting.name}: {title}", index=("item",), pivot="quantity",
                             pivot_header=" ", index_header=" ",
                             columns=(Column("value", kind="mean_se", se="se", missing="--"),))
            parts.extend(render_table(spec, part).values())
        return "\n".join(parts)

    def _header_text(self) -> str:
        comp = self.composition
        srcs = ", ".join(f"{lab}^({w:g})" for lab, w in zip(self.setting.labels, comp.weights))
        return (f"Q ∝ {srcs} in d = {comp.dim}; schedule {self.schedule}; {self.n_steps} steps, eps = {self.eps:g}, "
                f"continuous laws stopped at t_min = {self.t_min:g}, every sampler started at N(0, I).")

    def __str__(self) -> str:
        lines = [f"Diagnosis of {self.setting.name}: {self._header_text()}"]
        if isinstance(self.target, Gaussian):
            m = np.array2string(np.asarray(self.target.mean), precision=4, suppress_small=True)
            v = np.array2string(np.linalg.eigvalsh(np.asarray(self.target.cov)), precision=4, suppress_small=True)
            lines.append(f"target Q: N(mean {m}, covariance eigenvalues {v}) (closed form); log Z = "
                         f"{self.log_normalizer:.6g}")
        else:
            z = "n/a" if self.log_normalizer is None else f"{self.log_normalizer:.6g}"
            lines.append(f"target Q: {self.target_method}{' — ' + self.target_note if self.target_note else ''}; "
                         f"log Z = {z}")
        lines.append("per source (OOD):")
        for o in self.ood:
            lines.append(f"  {o.label:>12}: log(1+χ²(Q‖P)) = {_plain(o.log1p_chi2, o.log1p_chi2_se)}, "
                         f"Q mass outside its 95% HDR = {_plain(o.outside_hdr, o.outside_hdr_se)} ({o.method})")
        lines.append("per sampler (error against Q):")
        for s in self.samplers:
            kl = _plain(s.kl, s.kl_se) if not math.isnan(s.kl) else "n/a"
            lines.append(f"  {s.sampler:>26}: KL(Q‖law) = {kl}, W₂ = {_plain(s.w2, s.w2_se)} ({s.method})"
                         + (f" — {s.note}" if s.note else ""))
        if self.fkc_limit is not None and self.fkc_log_mass_expected is not None:
            lines.append(f"FKC limit log mass {self.fkc_limit.log_mass:.6g} (log Z(π_eps) − log Z(π_T−eps) = "
                         f"{self.fkc_log_mass_expected:.6g}, the difference is the grid's discretization)")
        if self.particles:
            lines.append(f"FKC particles needed for |bias| ≤ {self.tolerance:g} (fit c/K over pilot K = "
                         f"{sorted(set(self.pilot['K']))}):")
            for p in self.particles:
                lines.append(f"  {_STAT_LABEL[p.statistic]:>6}: c = {p.c:.4g} ± {p.c_se:.2g} → K = {p.k} "
                             f"(range {p.k_low}–{p.k_high})")
        elif self.particles_note:
            lines.append(f"FKC particles: {self.particles_note}")
        if self._amplification is not None:
            line = f"estimation error: λ_max = {self.lambda_max:.4g}"
            if self._crossover is not None:
                line += (f"; crossover ε = {self._crossover.eps:.4g} (a worst-case misspecification of that DSM size "
                         "costs as much as naive composition's bias)")
            lines.append(line)
        return "\n".join(lines)

    def figure(self):
        """A figure: each sampler's error (KL, or sliced W₂ for mixtures) and, with pilot runs, the bias of each
        statistic against ``K`` with the fitted ``c/K`` and the tolerance. It displays as a picture in Jupyter
        without pyplot (:class:`verify.report.figures.Figure`)."""
        from verify.report.figures import Figure

        n = 1 + (self.pilot is not None)
        fig = Figure(figsize=(4.6 * n, 3.6), layout="constrained")
        axes = fig.subplots(1, n, squeeze=False).ravel()
        ax = axes[0]
        shown = [s for s in self.samplers if math.isfinite(s.w2)]
        use_kl = all(math.isfinite(s.kl) for s in shown)
        values = [s.kl if use_kl else s.w2 for s in shown]
        errors = [s.kl_se if use_kl else s.w2_se for s in shown]
        ax.barh([s.sampler for s in shown], np.maximum(values, 1e-16), xerr=errors, color="0.5")
        ax.set_xscale("log")
        ax.set_xlabel("KL(Q‖law)" if use_kl else "sliced W₂ to Q")
        ax.set_title(self.setting.name)
        if self.pilot is not None:
            ax = axes[1]
            for p in self.particles:
                part = self.pilot[self.pilot["statistic"] == p.statistic]
                ks = part["K"].to_numpy(dtype=float)
                ax.errorbar(ks, np.abs(part["gap"]), yerr=part["se"], marker="o", ls="none",
                            label=f"{_STAT_LABEL[p.statistic]} |MC − limit|")
                grid = np.geomspace(1, max(ks.max(), p.k) * 1.5, 50)
                ax.plot(grid, abs(p.c) / grid, lw=1, label=f"fit |c|/K ({_STAT_LABEL[p.statistic]})")
            ax.axhline(self.tolerance, color="0.25", ls="--", lw=1, label="tolerance")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("particles K")
            ax.set_ylabel("bias over FKC's limit")
            ax.legend(fontsize="x-small")
        return fig


def _plain(value, se=0.0) -> str:
    value = float(value)
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if se and se > 0:
        return f"{value:.4g} ± {se:.2g}"
    if float(value).is_integer() and abs(value) < 1e9:
        return f"{int(value)}" if abs(value) >= 1 else f"{value:.4g}"
    return f"{value:.4g}"


# ------------------------------------------------------------------------------------------------ diagnose
def diagnose(composition, schedule=None, *, n_steps: int = 500, seed=0, t_min: float = 1e-4, eps: float = 1e-5,
             tolerance: float = 0.05, particles: bool = True, estimation: bool = True, pilot_ks=(4, 16),
             pilot_swarms: int = 4000, n_samples: int = 4000, n_runs: int = 4, level: float = 0.95) -> Diagnosis:
    """Diagnose a Gaussian or Gaussian-mixture composition (module doc).

    Parameters
    ----------
    composition : Composition, Setting or str
        Anything :func:`closed_form.as_setting` takes (a paper setting's name, a spec, a setting, a composition).
    schedule : VPSchedule or CosineSchedule, optional
        Default :class:`closed_form.VPSchedule` ``()`` (the paper's).
    n_steps, eps : int, float
        The samplers' grid (:func:`closed_form.reverse_time_grid`).
    seed : int or jax.random key
        Every random draw (pilot runs, Monte Carlo estimates) derives from it.
    t_min : float
        Where the continuous-time laws stop.
    tolerance : float
        The bias over FKC's limit that the particle count must reach, per statistic (absolute).
    particles, estimation : bool
        Run the FKC pilots; compute ``λ_max`` and the crossover (Gaussian sources; they take seconds to compile).
    pilot_ks, pilot_swarms : the pilot runs' particle counts and swarms per count (4000 by default: with 1000 the
        fit's ``c`` was not resolved from 0 on the 3-D example, and the pilots' cost is mostly compilation).
    n_samples, n_runs : draws per run and independent runs of the Monte Carlo estimates (mixtures).
    level : float
        The highest-density region's mass for the OOD measure.

    Raises
    ------
    CatcompError
        For an invalid composition, schedule or option (the message says what would be valid).
    """
    setting = as_setting(composition)
    schedule = VPSchedule() if schedule is None else schedule
    key = _key(seed)
    if not (tolerance > 0 and math.isfinite(tolerance)):
        raise CatcompError(f"tolerance must be a finite positive number, got {tolerance!r}.")
    ks = tuple(int(k) for k in pilot_ks)
    if particles and (len(set(ks)) < 2 or min(ks) < 1):
        raise CatcompError(f"pilot_ks needs at least two distinct positive particle counts, got {pilot_ks!r}.")
    d = Diagnosis(setting, schedule, int(n_steps), float(t_min), float(eps), seed, float(tolerance))
    if setting.is_gaussian:
        _gaussian_part(d)
    else:
        _mixture_part(d, jax.random.fold_in(key, 1), int(n_samples), int(n_runs), level, ks)
    if particles and setting.is_gaussian and d.fkc_limit is None:
        pass  # no limit to converge to: particles_note says why
    elif particles:
        _particles(d, jax.random.fold_in(key, 2), ks, int(pilot_swarms))
    else:
        d.particles_note = "not computed (particles=False)"
    if estimation and setting.is_gaussian:
        d.amplification  # noqa: B018 - computes and caches
        d.crossover  # noqa: B018
    return d


def _gaussian_part(d: Diagnosis) -> None:
    from closed_form import (euler_maruyama_law, fkc_limit_law, kl, log1p_chi2, ode_law, reverse_time_grid,
                             sde_law, w2)
    from closed_form.ood import fraction_outside_hdr

    comp, s = d.composition, d.schedule
    q = comp.target
    d.target, d.target_method, d.log_normalizer = q, "closed form", float(comp.log_normalizer())
    d.ood = [SourceOOD(lab, float(log1p_chi2(q, p)), 0.0, float(fraction_outside_hdr(q, p)), 0.0, "exact")
             for lab, p in zip(d.setting.labels, comp.sources)]
    start = Gaussian.standard(comp.dim)
    naive = comp.naive_field(s)
    laws = [("naive SDE (continuous)", sde_law(naive, s, start, t_min=d.t_min)),
            (f"naive SDE (EM, {d.n_steps} steps)", euler_maruyama_law(naive, s, start, d.n_steps, d.eps)),
            ("probability-flow ODE", ode_law(naive, s, start, t_min=d.t_min))]
    d.samplers = [SamplerError(name, float(kl(q, law)), 0.0, float(w2(q, law)), 0.0, "exact") for name, law in laws]
    fkc_name = f"FKC K → ∞ ({d.n_steps} steps)"
    try:
        d.fkc_limit = fkc_limit_law(comp.source_fields(s), comp.weights, s, start, n_steps=d.n_steps, eps=d.eps)
    except WeightsNotIntegrableError as err:
        d.samplers.append(SamplerError(fkc_name, math.nan, 0.0, math.nan, 0.0, "exact",
                                       f"no K → ∞ limit on this grid: the weights are not integrable at t = "
                                       f"{err.t:.4g} (a finer grid, more n_steps, may restore it)"))
        d.particles_note = "FKC has no K → ∞ limit on this grid (its weights are not integrable), so no particle count"
        return
    d.samplers.append(SamplerError(fkc_name, float(kl(q, d.fkc_limit.law)), 0.0, float(w2(q, d.fkc_limit.law)), 0.0,
                                   "exact"))
    grid = reverse_time_grid(s, d.n_steps, d.eps)
    d.fkc_log_mass_expected = float(comp.path_composition(s, float(grid[-1])).log_normalizer()
                                    - comp.path_composition(s, float(grid[0])).log_normalizer())


def _mixture_part(d: Diagnosis, key, n_samples, n_runs, level, ks) -> None:
    from verify.analysis.metrics import sliced_w2
    from verify.analysis.montecarlo import (fraction_outside_hdr_monte_carlo, hdr_log_density_threshold,
                                            ress_inverse_monte_carlo)
    from verify.samplers import naive_ode_sample, naive_sde_sample, source_scores

    comp, s = d.composition, d.schedule
    if comp.has_closed_form_target:
        d.target, d.target_method = comp.target, "closed form"
    else:
        d.target_method = "exact sampler (no closed form)"
    try:
        d.log_normalizer = float(comp.log_normalizer())
        if not comp.has_closed_form_target:
            d.target_note = "normalizer by cubature"
    except NoClosedFormError as err:
        d.target_note = f"no normalizer: {err}"

    def draws(k, n):
        return np.asarray(comp.sample_target(k, n).samples)

    big = draws(jax.random.fold_in(key, 0), n_samples * n_runs)
    method = "Monte Carlo"
    ood = []
    for i, (lab, p) in enumerate(zip(d.setting.labels, comp.sources)):
        if d.log_normalizer is not None:
            r = ress_inverse_monte_carlo(comp.target_logpdf, p, big)
            chi, chi_se = math.log(r.value), r.stderr / r.value
        else:
            chi, chi_se = math.nan, 0.0
        thr = hdr_log_density_threshold(p, jax.random.fold_in(key, 10 + i), level)
        frac = fraction_outside_hdr_monte_carlo(big, [p], [thr])["each"][0]
        ood.append(SourceOOD(lab, chi, chi_se, frac.value, frac.stderr, method))
    d.ood = ood
    scores = source_scores(comp, s)
    runs = {f"naive SDE (EM, {d.n_steps} steps)": [], f"probability-flow ODE (Heun, {d.n_steps} steps)": [],
            "floor: two exact samples of Q": []}
    for r in range(n_runs):
        kr = jax.random.fold_in(key, 100 + r)
        ref = draws(jax.random.fold_in(kr, 0), n_samples)
        sde = naive_sde_sample(jax.random.fold_in(kr, 1), scores, comp.weights, s, n_samples, d.n_steps, eps=d.eps)
        ode = naive_ode_sample(jax.random.fold_in(kr, 2), scores, comp.weights, s, n_samples, d.n_steps, eps=d.eps)
        other = draws(jax.random.fold_in(kr, 3), n_samples)
        kp = jax.random.fold_in(kr, 4)
        for name, x in zip(runs, (sde, ode, other)):
            runs[name].append(sliced_w2(np.asarray(x), ref, kp))
    d.samplers = [SamplerError(name, math.nan, 0.0, float(np.mean(v)), float(np.std(v, ddof=1) / np.sqrt(len(v))),
                               f"Monte Carlo, sliced W₂, {n_runs} runs of {n_samples}",
                               "KL needs the sampler's density, which draws do not give")
                  for name, v in runs.items()]


def _particles(d: Diagnosis, key, ks, n_swarms) -> None:
    from verify.analysis.stats import t_quantile

    rows = []
    for k in ks:
        values = d._run_fkc(jax.random.fold_in(key, k), k, n_swarms)
        for stat in PARTICLE_STATISTICS:
            v = values[stat]
            rows.append({"statistic": stat, "K": k, "mc": float(np.mean(v)),
                         "se": float(np.std(v, ddof=1) / np.sqrt(len(v))), "n_swarms": n_swarms})
    pilot = pd.DataFrame(rows)
    exact = None
    if d.fkc_limit is not None:
        law = d.fkc_limit.law
        m = np.asarray(law.mean)
        exact = {"second_moment": float(np.trace(np.asarray(law.cov)) + m @ m), "log_z": float(d.fkc_limit.log_mass)}
    estimates = []
    t = t_quantile(n_swarms - 1)
    for stat in PARTICLE_STATISTICS:
        part = pilot[pilot["statistic"] == stat]
        kk, mc, se = part["K"].to_numpy(), part["mc"].to_numpy(), part["se"].to_numpy()
        if exact is not None:
            limit = exact[stat]
            c, c_se = _fit_c_over_k(kk, mc - limit, se)
        else:
            limit, _, c, c_se = _fit_a_plus_c_over_k(kk, mc, se)
        pilot.loc[part.index, "limit"] = limit
        estimates.append(ParticleEstimate(stat, d.tolerance, limit, exact is not None, c, c_se, t,
                                          _k_for(abs(c), d.tolerance), _k_for(max(abs(c) - t * c_se, 0.0),
                                                                              d.tolerance),
                                          _k_for(abs(c) + t * c_se, d.tolerance)))
    pilot["gap"] = pilot["mc"] - pilot["limit"]
    d.pilot, d.particles = pilot, estimates
    if exact is None:
        d.particles_note = "the limit is the fitted intercept a of a + c/K (no exact limit for mixture sources)"


# ------------------------------------------------------------------------------------------------ command line
def main(argv=None) -> int:
    """``python -m verify diagnose FILE.toml [--out DIR]``: diagnose every setting of a settings file, print each
    and write ``DIR/<name>.md``, ``.tex``, ``.pdf`` and ``.png``. Exit status 0, or 2 for an invalid file."""
    parser = argparse.ArgumentParser(prog="python -m verify diagnose", description=main.__doc__)
    parser.add_argument("file", help="a TOML settings file (closed_form.settings_file describes the format)")
    parser.add_argument("--out", default="diagnosis", metavar="DIR", help="output folder (default diagnosis/)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="diagnose only these settings of the file")
    parser.add_argument("--n-steps", type=int, default=500, help="the samplers' steps (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=0.05,
                        help="bias over FKC's limit the particle count must reach (default 0.05)")
    parser.add_argument("--pilot-ks", type=int, nargs="+", default=[4, 16], metavar="K")
    parser.add_argument("--pilot-swarms", type=int, default=1000)
    parser.add_argument("--no-particles", action="store_true", help="skip the FKC pilot runs")
    parser.add_argument("--no-estimation", action="store_true", help="skip λ_max and the crossover")
    args = parser.parse_args(argv)
    from closed_form.settings_file import load_settings
    from verify.report.cache import atomic_write
    from verify.report.figures import save_figure

    try:
        settings = load_settings(args.file)
    except CatcompError as err:
        print(f"python -m verify diagnose: {err}", file=sys.stderr)
        return 2
    if args.only:
        unknown = sorted(set(args.only) - {s.name for s in settings})
        if unknown:
            print(f"python -m verify diagnose: no setting(s) {unknown} in {args.file}; it has "
                  f"{[s.name for s in settings]}", file=sys.stderr)
            return 2
        settings = [s for s in settings if s.name in args.only]
    out = Path(args.out)
    for setting in settings:
        try:
            d = diagnose(setting, n_steps=args.n_steps, seed=args.seed, tolerance=args.tolerance,
                         pilot_ks=tuple(args.pilot_ks), pilot_swarms=args.pilot_swarms,
                         particles=not args.no_particles, estimation=not args.no_estimation)
        except CatcompError as err:
            print(f"python -m verify diagnose: {setting.name}: {err}", file=sys.stderr)
            return 2
        print(d)
        print()
        atomic_write(out / f"{setting.name}.md", d.to_markdown())
        atomic_write(out / f"{setting.name}.tex", d.to_latex())
        save_figure(d.figure(), out, setting.name)
    print(f"diagnoses written to {out}/")
    return 0


__all__ = ["Diagnosis", "Misspecification", "ParticleEstimate", "SamplerError", "SourceOOD", "diagnose", "main"]
