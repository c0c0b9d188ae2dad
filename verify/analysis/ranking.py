r"""Which measure ranks an outcome best: Spearman correlations over a population, with bootstrap intervals.

A *predictor* is a column of a per-member frame and a *direction*: ``+1`` where a larger value is expected to mean
more harm, ``−1`` where a smaller one is (a crossover ``ε`` below which an error is harmless, say). An *outcome* is a
harm (larger = worse). Everything here is signed by the predictor's direction, so that for every predictor a
larger correlation means a better ranking of the outcome.

* :func:`spearman`: the rank correlation of two columns, ``+∞`` allowed (infinite values tie at the top and get the
  average of the top ranks, as any tie does), rows with a NaN in either column dropped and counted. It is the
  Pearson correlation of the average ranks (scipy's ``spearmanr``), undefined — :class:`UndefinedCorrelationError`,
  never a NaN — where either column is constant (all infinite, say) or fewer than three rows remain.
* :func:`correlation` / :func:`compare`: percentile bootstrap intervals over members (members resampled with
  replacement, ``B`` resamples from a seed) of one signed correlation ``ρ_p`` and of a difference ``ρ_p − ρ_q``,
  the latter *paired*: both correlations are computed on the same resamples of the members where ``p``, ``q`` and
  the outcome are all known. A resample where a predictor is constant has no correlation; it is counted
  (``undefined``) and put in *both* tails — it lowers the lower end and raises the upper end — so that an
  undefined resample can only widen an interval, never resolve it.
* :func:`best_predictor`: every predictor's ``ρ`` with its interval, ordered, and the paired intervals of the best
  one against each other one. :func:`decide_best`: the claim "``p`` ranks ``o`` best among the predictors" at the
  family-wise level of :data:`verify.analysis.stats.ALPHA`: with ``m`` comparisons ``ρ_p − ρ_q`` (one per other
  predictor whose correlation is defined), each paired interval is a two-sided ``1 − 2α/m`` interval (Bonferroni);
  the claim *holds* if every interval lies above 0, *fails* if some interval lies below 0, and is *inconclusive*
  otherwise. A wrong "holds" needs some true ``ρ_p − ρ_q ≤ 0`` whose interval nevertheless lies above 0 (rate ≤ α/m
  each, ≤ α together); a wrong "fails" needs some true difference ≥ 0 whose interval lies below 0 (≤ α together).
* :func:`disagreements`: the members where two predictors' (normalized, signed) ranks differ most.

**Strata.** Every function above takes ``strata`` (``None``, or the name of a column such as ``dim``). With a
column, a correlation is computed *within* each stratum (the same ``+∞`` / NaN rules) and the strata are combined as
the mean of their ``ρ_s`` weighted by their members ``n_s`` (:func:`stratified_spearman`); a stratum with fewer
than :data:`MIN_MEMBERS` usable members, or where a column is constant, is left out and listed (``excluded``), never
turned into a NaN. The bootstrap is stratified (:func:`stratified_resamples`): each resample draws ``n_s`` members
with replacement inside each stratum, so every stratum keeps its count; a resample in which some stratum's
correlation is undefined is undefined as a whole (counted, both tails, as above). A difference ``ρ_p − ρ_q`` is
over the strata where both are defined. With a single stratum every number equals the pooled one exactly. A pooled
correlation over strata that differ in level (dimensions, say) also rewards knowing the stratum; the stratified one
does not.

The bootstrap treats the members as independent draws from one population, so it applies to members drawn at random
from a stated generator, not to hand-picked ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from closed_form.errors import CatcompError
from verify.analysis.stats import ALPHA

#: Bootstrap resamples of the report's intervals.
BOOTSTRAP = 2000
#: Fewest members (after dropping NaN rows) a correlation is computed from.
MIN_MEMBERS = 3


class UndefinedCorrelationError(CatcompError):
    """A rank correlation that does not exist: a constant column (every value tied, e.g. all ``+∞``), fewer than
    :data:`MIN_MEMBERS` rows with both values known, or an outcome or predictor column that is absent."""


class RankingError(CatcompError):
    """Invalid input to the ranking functions: an unknown direction, a non-positive resample count, a column that is
    not numeric, ``−∞`` in a column (only ``+∞`` means "beyond every finite value" here)."""


# ---------------------------------------------------------------------------------------------- point estimates
def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        raise UndefinedCorrelationError(f"column {name!r} is not in the frame; it has {list(frame.columns)}.")
    try:
        x = frame[name].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise RankingError(f"column {name!r} must be numeric (finite, +inf or NaN): {err}") from None
    if np.any(np.isneginf(x)):
        raise RankingError(f"column {name!r} holds -inf; only +inf (beyond every finite value) and NaN (unknown, "
                           "dropped) are allowed.")
    return x


def _direction(direction) -> int:
    d = getattr(direction, "direction", direction)
    if d not in (1, -1):
        raise RankingError(f"a predictor's direction must be +1 (larger = more harm) or -1, got {d!r}.")
    return int(d)


def _directions(predictors) -> dict[str, int]:
    """``{name: direction}`` from a mapping name → direction (an int or an object with ``.direction``), or from a
    sequence of objects with ``.name`` and ``.direction``."""
    if isinstance(predictors, Mapping):
        return {str(k): _direction(v) for k, v in predictors.items()}
    out = {}
    for p in predictors:
        if not hasattr(p, "name"):
            raise RankingError(f"predictors must be a mapping name → direction or objects with .name and "
                               f".direction; got {p!r}.")
        out[str(p.name)] = _direction(p)
    return out


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis; ``+∞`` ties at the top like any tie."""
    return rankdata(x, method="average", axis=-1)


def _rank_correlation(rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of rank arrays ``(..., n)``; NaN where a row of either is constant (the caller
    counts those, nothing returns them)."""
    cx = rx - rx.mean(axis=-1, keepdims=True)
    cy = ry - ry.mean(axis=-1, keepdims=True)
    sxx = np.einsum("...i,...i->...", cx, cx)
    syy = np.einsum("...i,...i->...", cy, cy)
    sxy = np.einsum("...i,...i->...", cx, cy)
    # Average ranks are multiples of 1/2, so a constant row centres to exact zeros; the margin only guards rounding.
    n = rx.shape[-1]
    tiny = 1e-9 * n**3
    ok = (sxx > tiny) & (syy > tiny)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(ok, sxy / np.sqrt(np.where(ok, sxx * syy, 1.0)), np.nan)
    return np.clip(rho, -1.0, 1.0)


@dataclass(frozen=True)
class Rank:
    """A rank correlation: ``rho`` (signed by the predictor's direction), the members it is over (``n``), and the
    rows dropped because the predictor or the outcome was NaN (``dropped``)."""

    rho: float
    n: int
    dropped: int


def _known(*columns: np.ndarray) -> np.ndarray:
    keep = np.ones(columns[0].shape, dtype=bool)
    for c in columns:
        keep &= ~np.isnan(c)
    return keep


def spearman(x, y, direction: int = 1) -> Rank:
    """Spearman's rank correlation of ``x`` and ``y`` times ``direction``: average ranks (ties, ``+∞`` included, share
    them), rows where either is NaN dropped and counted.

    Raises
    ------
    UndefinedCorrelationError
        Where fewer than :data:`MIN_MEMBERS` rows remain or either column is constant on them.
    RankingError
        For ``−∞`` values, mismatched lengths or a direction other than ±1.
    """
    d = _direction(direction)
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise RankingError(f"x and y must have the same length, got {x.size} and {y.size}.")
    if np.any(np.isneginf(x)) or np.any(np.isneginf(y)):
        raise RankingError("-inf is not a valid value here; only +inf (beyond every finite value) and NaN (unknown, "
                           "dropped) are allowed.")
    keep = _known(x, y)
    n = int(keep.sum())
    if n < MIN_MEMBERS:
        raise UndefinedCorrelationError(f"a rank correlation needs at least {MIN_MEMBERS} rows with both values "
                                        f"known; {n} of {x.size} are.")
    rho = float(_rank_correlation(_ranks(x[keep]), _ranks(y[keep])))
    if math.isnan(rho):
        which = [name for name, v in (("x", x[keep]), ("y", y[keep])) if np.all(v == v[0])]
        raise UndefinedCorrelationError(f"the rank correlation is undefined: {' and '.join(which)} constant on the "
                                        f"{n} rows (every value tied" + (", all +inf" if any(
                                            np.all(np.isinf(v)) for v in (x[keep], y[keep])) else "") + ").")
    return Rank(d * rho, n, int(x.size - n))


# ---------------------------------------------------------------------------------------------- strata
def _label(value) -> str:
    """A stratum's label as text (``2`` rather than ``2.0``)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _strata_column(frame: pd.DataFrame, strata: str) -> np.ndarray:
    if strata not in frame.columns:
        raise RankingError(f"the strata column {strata!r} is not in the frame; it has {list(frame.columns)}.")
    labels = frame[strata].to_numpy()
    if pd.isna(labels).any():
        raise RankingError(f"the strata column {strata!r} has {int(pd.isna(labels).sum())} missing labels; every "
                           "member needs a stratum.")
    return labels


def _groups(labels: np.ndarray) -> list[tuple[object, np.ndarray]]:
    """``(label, positions)`` per stratum, labels sorted, positions ascending."""
    uniq = pd.unique(pd.Series(labels))
    try:
        uniq = sorted(uniq)
    except TypeError:
        uniq = sorted(uniq, key=str)
    return [(u, np.flatnonzero(labels == u)) for u in uniq]


@dataclass(frozen=True)
class Stratum:
    """One stratum of a stratified correlation: its ``label``, members ``n`` (with the columns known) and signed
    ``rho`` (a tuple of them for a difference: ``(ρ_p, ρ_q)``); or, for an excluded stratum, ``rho=None`` and the
    ``reason``."""

    label: str
    n: int
    rho: float | tuple | None
    reason: str = ""


def _split_strata(columns: list[tuple[np.ndarray, int]], y: np.ndarray, labels: np.ndarray):
    """Per stratum of ``labels`` (over rows already free of NaN), the signed correlation of each ``(x, direction)``
    with ``y``; returns ``(used, excluded)``: ``used`` a list of ``(Stratum, positions)`` where every correlation is
    defined on at least :data:`MIN_MEMBERS` members, ``excluded`` the other strata with the reason."""
    used, excluded = [], []
    for label, pos in _groups(labels):
        if pos.size < MIN_MEMBERS:
            excluded.append(Stratum(_label(label), int(pos.size), None,
                                    f"{pos.size} member{'s' if pos.size != 1 else ''}, fewer than {MIN_MEMBERS}"))
            continue
        try:
            rhos = tuple(spearman(x[pos], y[pos], d).rho for x, d in columns)
        except UndefinedCorrelationError as err:
            excluded.append(Stratum(_label(label), int(pos.size), None, str(err)))
            continue
        used.append((Stratum(_label(label), int(pos.size), rhos if len(rhos) > 1 else rhos[0]), pos))
    return used, excluded


def _excluded_text(excluded) -> str:
    return "; ".join(f"{e.label} ({e.reason})" for e in excluded)


@dataclass(frozen=True)
class StratifiedRank:
    """A stratified rank correlation: ``rho`` the ``n_s``-weighted mean of the strata's ``ρ_s`` over the strata
    used, ``n`` their members, ``dropped`` the rows with a NaN, ``strata`` the strata used and ``excluded`` those
    left out (fewer than :data:`MIN_MEMBERS` members or a constant column), with the reason."""

    rho: float
    n: int
    dropped: int
    strata: tuple[Stratum, ...]
    excluded: tuple[Stratum, ...]


def stratified_spearman(x, y, strata, direction: int = 1) -> StratifiedRank:
    """Spearman's rank correlation within each stratum (``strata``: one label per row), signed by ``direction``,
    combined as ``Σ_s (n_s / N) ρ_s`` over the strata with at least :data:`MIN_MEMBERS` members and a defined
    ``ρ_s`` (``N = Σ n_s`` over those). Rows with a NaN in ``x`` or ``y`` are dropped and counted first; ``+∞`` ties
    at the top within its stratum. With one stratum this is :func:`spearman` exactly.

    Raises
    ------
    UndefinedCorrelationError
        Where no stratum has a defined correlation (the message lists each stratum and why).
    RankingError
        For ``−∞`` values, mismatched lengths, missing labels or a direction other than ±1.
    """
    d = _direction(direction)
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    labels = np.asarray(strata, dtype=object).ravel()
    if not (x.shape == y.shape == labels.shape):
        raise RankingError(f"x, y and strata must have the same length, got {x.size}, {y.size} and {labels.size}.")
    if np.any(np.isneginf(x)) or np.any(np.isneginf(y)):
        raise RankingError("-inf is not a valid value here; only +inf (beyond every finite value) and NaN (unknown, "
                           "dropped) are allowed.")
    if pd.isna(labels).any():
        raise RankingError("every row needs a stratum label; some are missing.")
    keep = _known(x, y)
    used, excluded = _split_strata([(x[keep], d)], y[keep], labels[keep])
    if not used:
        raise UndefinedCorrelationError("no stratum has a defined rank correlation: " + (
            _excluded_text(excluded) or "no rows with both values known") + ".")
    total = sum(s.n for s, _ in used)
    rho = sum((s.n / total) * s.rho for s, _ in used)
    return StratifiedRank(float(rho), int(total), int(x.size - keep.sum()), tuple(s for s, _ in used),
                          tuple(excluded))


def stratified_resamples(seed: int, strata, resamples: int) -> np.ndarray:
    """``(B, n)`` row indices of a stratified bootstrap: column ``j`` of each resample holds a row of the same stratum
    as row ``j``, the strata's rows drawn with replacement, so every resample keeps each stratum's count. Strata are
    drawn in sorted label order from one generator seeded by ``(seed, n, B)``; with one stratum this is the pooled
    bootstrap's :func:`_resamples` exactly. Same ``(seed, strata, B)`` → the same indices."""
    if int(resamples) < 1:
        raise RankingError(f"the number of bootstrap resamples must be positive, got {resamples!r}.")
    labels = np.asarray(strata, dtype=object).ravel()
    n = labels.size
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(n), int(resamples)]))
    index = np.empty((int(resamples), n), dtype=np.int64)
    for _, pos in _groups(labels):
        index[:, pos] = pos[rng.integers(0, pos.size, size=(int(resamples), pos.size))]
    return index


def _stratified_boot(columns, y, used, seed, resamples) -> np.ndarray:
    """Bootstrap values ``Σ_s (n_s/N) Σ_k d_k ρ_s(x_k)`` over the strata ``used`` (``columns``: ``(x, sign)``
    pairs, the signed correlations summed, so ``[(x, d_p), (z, −d_q)]`` gives a difference), NaN where some stratum's
    correlation is undefined in a resample."""
    positions = np.concatenate([pos for _, pos in used])
    labels = np.concatenate([np.full(pos.size, i) for i, (_, pos) in enumerate(used)])
    index = stratified_resamples(seed, labels, resamples)
    total = sum(s.n for s, _ in used)
    out = np.zeros(int(resamples))
    start = 0
    for s, pos in used:
        cols = np.arange(start, start + pos.size)
        start += pos.size
        rows = positions[index[:, cols]]
        ranks_y = _ranks(y[rows])
        value = sum(sign * _rank_correlation(_ranks(x[rows]), ranks_y) for x, sign in columns)
        out = out + (s.n / total) * value
    return out


# ---------------------------------------------------------------------------------------------- bootstrap
def _resamples(seed: int, n: int, resamples: int) -> np.ndarray:
    """``(B, n)`` member indices drawn with replacement; the same for the same ``(seed, n, B)``."""
    if int(resamples) < 1:
        raise RankingError(f"the number of bootstrap resamples must be positive, got {resamples!r}.")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(n), int(resamples)]))
    return rng.integers(0, n, size=(int(resamples), n))


def _bootstrap_rho(x: np.ndarray, y: np.ndarray, index: np.ndarray) -> np.ndarray:
    return _rank_correlation(_ranks(x[index]), _ranks(y[index]))


def percentile_interval(values: np.ndarray, tail: float) -> tuple[float, float]:
    """The percentile interval ``[v_(k), v_(B+1−k)]`` of ``B`` bootstrap values, ``k = ⌊(B+1)·tail⌋`` (order
    statistics, 1-based; ``(−∞, ∞)`` where ``k < 1``). A NaN entry (an undefined resample) counts as ``−∞`` for the
    lower end and as ``+∞`` for the upper end, so it can only widen the interval."""
    v = np.asarray(values, dtype=np.float64).ravel()
    b = v.size
    k = int(math.floor((b + 1) * tail))
    if k < 1:
        return -math.inf, math.inf
    low = np.sort(np.where(np.isnan(v), -np.inf, v))[k - 1]
    high = np.sort(np.where(np.isnan(v), np.inf, v))[b - k]
    return float(low), float(high)


@dataclass(frozen=True)
class Correlation:
    """A predictor's signed rank correlation with an outcome and its bootstrap interval.

    ``rho`` is ``None`` where the correlation is undefined (``reason`` says why); ``lower``/``upper`` the two-sided
    percentile interval at ``level``; ``undefined`` the resamples (of ``resamples``) with a constant column."""

    predictor: str
    outcome: str
    rho: float | None
    n: int
    dropped: int
    lower: float
    upper: float
    level: float
    resamples: int
    undefined: int
    reason: str = ""
    strata: str | None = None
    per_stratum: tuple[Stratum, ...] = ()
    excluded: tuple[Stratum, ...] = ()

    @property
    def defined(self) -> bool:
        return self.rho is not None

    def text(self) -> str:
        if self.rho is None:
            return f"undefined ({self.reason})"
        return f"{self.rho:.3f} [{self.lower:.3f}, {self.upper:.3f}]"


@dataclass(frozen=True)
class Comparison:
    """A paired difference ``ρ_p − ρ_q`` of two signed correlations over the members where ``p``, ``q`` and the
    outcome are all known, with its percentile interval at ``level`` (two-sided)."""

    predictor: str
    other: str
    outcome: str
    difference: float | None
    n: int
    dropped: int
    lower: float
    upper: float
    level: float
    resamples: int
    undefined: int
    reason: str = ""
    strata: str | None = None
    per_stratum: tuple[Stratum, ...] = ()
    excluded: tuple[Stratum, ...] = ()

    @property
    def direction(self) -> int:
        """+1 if the interval lies above 0, −1 if below, 0 otherwise (or where undefined)."""
        if self.difference is None:
            return 0
        return 1 if self.lower > 0 else -1 if self.upper < 0 else 0

    def text(self) -> str:
        if self.difference is None:
            return f"undefined ({self.reason})"
        return f"{self.difference:+.3f} [{self.lower:+.3f}, {self.upper:+.3f}]"


def correlation(frame: pd.DataFrame, predictor: str, outcome: str, direction: int = 1, *, seed: int = 0,
                resamples: int = BOOTSTRAP, level: float = 1 - 2 * ALPHA, strata: str | None = None) -> Correlation:
    """``ρ`` of ``predictor`` (signed by ``direction``) with ``outcome`` over the members where both are known, and
    its two-sided percentile bootstrap interval at ``level`` (``resamples`` resamples of those members from
    ``seed``). An undefined point estimate gives ``rho=None`` with the reason, not an error. With ``strata`` (a
    column), the stratified correlation and bootstrap (module doc): ``n`` counts the members of the strata used,
    ``excluded`` lists the others."""
    d = _direction(direction)
    x, y = _column(frame, predictor), _column(frame, outcome)
    keep = _known(x, y)
    n, dropped = int(keep.sum()), int(len(x) - keep.sum())
    if strata is not None:
        labels = _strata_column(frame, strata)[keep]
        used, excluded = _split_strata([(x[keep], d)], y[keep], labels)
        if not used:
            reason = "no stratum has a defined rank correlation: " + (_excluded_text(excluded) or "no members")
            return Correlation(predictor, outcome, None, 0, dropped, -math.inf, math.inf, level, 0, 0, reason,
                               strata, (), tuple(excluded))
        total = sum(st.n for st, _ in used)
        rho = float(sum((st.n / total) * st.rho for st, _ in used))
        boot = _stratified_boot([(x[keep], d)], y[keep], used, seed, resamples)
        low, high = percentile_interval(boot, (1 - level) / 2)
        return Correlation(predictor, outcome, rho, int(total), dropped, low, high, level, int(resamples),
                           int(np.isnan(boot).sum()), "", strata, tuple(st for st, _ in used), tuple(excluded))
    try:
        point = spearman(x[keep], y[keep], d)
    except UndefinedCorrelationError as err:
        return Correlation(predictor, outcome, None, n, dropped, -math.inf, math.inf, level, 0, 0, str(err))
    boot = d * _bootstrap_rho(x[keep], y[keep], _resamples(seed, n, resamples))
    low, high = percentile_interval(boot, (1 - level) / 2)
    return Correlation(predictor, outcome, point.rho, n, dropped, low, high, level, int(resamples),
                       int(np.isnan(boot).sum()))


def compare(frame: pd.DataFrame, predictor: str, other: str, outcome: str, directions, *, seed: int = 0,
            resamples: int = BOOTSTRAP, level: float = 1 - 2 * ALPHA, strata: str | None = None) -> Comparison:
    """``ρ_predictor − ρ_other`` (each signed by its direction in ``directions``, a mapping name → ±1) over the
    members where both and the outcome are known, with its paired percentile bootstrap interval (two-sided,
    ``level``): both correlations on the same resamples. With ``strata``, both are stratified over the strata where
    both are defined, on the same stratified resamples (``per_stratum`` holds ``(ρ_p, ρ_q)`` per stratum)."""
    dirs = _directions(directions)
    x, z, y = _column(frame, predictor), _column(frame, other), _column(frame, outcome)
    keep = _known(x, z, y)
    n, dropped = int(keep.sum()), int(len(x) - keep.sum())
    if strata is not None:
        labels = _strata_column(frame, strata)[keep]
        dp, dq = dirs[predictor], dirs[other]
        used, excluded = _split_strata([(x[keep], dp), (z[keep], dq)], y[keep], labels)
        if not used:
            reason = "no stratum has both correlations defined: " + (_excluded_text(excluded) or "no members")
            return Comparison(predictor, other, outcome, None, 0, dropped, -math.inf, math.inf, level, 0, 0, reason,
                              strata, (), tuple(excluded))
        total = sum(st.n for st, _ in used)
        diff = float(sum((st.n / total) * (st.rho[0] - st.rho[1]) for st, _ in used))
        boot = _stratified_boot([(x[keep], dp), (z[keep], -dq)], y[keep], used, seed, resamples)
        low, high = percentile_interval(boot, (1 - level) / 2)
        return Comparison(predictor, other, outcome, diff, int(total), dropped, low, high, level, int(resamples),
                          int(np.isnan(boot).sum()), "", strata, tuple(st for st, _ in used), tuple(excluded))
    try:
        a = spearman(x[keep], y[keep], dirs[predictor]).rho
        b = spearman(z[keep], y[keep], dirs[other]).rho
    except UndefinedCorrelationError as err:
        return Comparison(predictor, other, outcome, None, n, dropped, -math.inf, math.inf, level, 0, 0, str(err))
    index = _resamples(seed, n, resamples)
    ranks_y = _ranks(y[keep][index])
    boot = (dirs[predictor] * _rank_correlation(_ranks(x[keep][index]), ranks_y)
            - dirs[other] * _rank_correlation(_ranks(z[keep][index]), ranks_y))
    low, high = percentile_interval(boot, (1 - level) / 2)
    return Comparison(predictor, other, outcome, a - b, n, dropped, low, high, level, int(resamples),
                      int(np.isnan(boot).sum()))


def bonferroni_level(m: int, alpha: float = ALPHA) -> float:
    """The two-sided level ``1 − 2α/m`` of each of ``m`` paired intervals (one-sided ``α/m`` per tail)."""
    if m < 1:
        raise RankingError(f"the number of comparisons must be positive, got {m!r}.")
    return 1.0 - 2.0 * alpha / m


@dataclass(frozen=True)
class Ranking:
    """Every predictor's correlation with one outcome, best first (undefined ones last), and the paired comparisons
    of ``best`` (the largest point ``ρ``; ``None`` if none is defined) with each other defined predictor at the
    Bonferroni level ``1 − 2α/m``."""

    outcome: str
    correlations: tuple[Correlation, ...]
    best: str | None
    comparisons: tuple[Comparison, ...] = field(default=())

    def by_name(self) -> dict[str, Correlation]:
        return {c.predictor: c for c in self.correlations}


def _order(correlations) -> tuple[Correlation, ...]:
    defined = sorted((c for c in correlations if c.defined), key=lambda c: -c.rho)
    return (*defined, *(c for c in correlations if not c.defined))


def paired_comparisons(frame, predictor, outcome, directions, *, seed=0, resamples=BOOTSTRAP, alpha=ALPHA,
                       others=None, strata=None) -> tuple[Comparison, ...]:
    """``predictor`` against each other predictor of ``directions`` (or of ``others``), each at the Bonferroni
    level over the comparisons made (within ``strata`` where given)."""
    dirs = _directions(directions)
    rest = [q for q in (others if others is not None else dirs) if q != predictor]
    if not rest:
        return ()
    level = bonferroni_level(len(rest), alpha)
    return tuple(compare(frame, predictor, q, outcome, dirs, seed=seed, resamples=resamples, level=level,
                         strata=strata) for q in rest)


def best_predictor(frame: pd.DataFrame, outcome: str, predictors, *, seed: int = 0, resamples: int = BOOTSTRAP,
                   alpha: float = ALPHA, strata: str | None = None) -> Ranking:
    """Rank ``predictors`` (a mapping name → direction, or objects with ``.name`` and ``.direction``) by their signed
    Spearman correlation with ``outcome``, each with its two-sided ``1 − 2α`` bootstrap interval, and compare the
    best with every other defined one (paired, Bonferroni). Columns absent from ``frame`` count as undefined. With
    ``strata``, every correlation and comparison is the stratified one (module doc)."""
    dirs = _directions(predictors)
    cors = []
    for name, d in dirs.items():
        if name not in frame.columns:
            cors.append(Correlation(name, outcome, None, 0, len(frame), -math.inf, math.inf, 1 - 2 * alpha, 0, 0,
                                    f"column {name!r} is not in the frame"))
            continue
        cors.append(correlation(frame, name, outcome, d, seed=seed, resamples=resamples, level=1 - 2 * alpha,
                                strata=strata))
    ordered = _order(cors)
    best = ordered[0].predictor if ordered and ordered[0].defined else None
    comparisons = ()
    if best is not None:
        others = [c.predictor for c in ordered if c.defined and c.predictor != best]
        comparisons = paired_comparisons(frame, best, outcome, dirs, seed=seed, resamples=resamples, alpha=alpha,
                                         others=others, strata=strata)
    return Ranking(outcome, ordered, best, comparisons)


# ---------------------------------------------------------------------------------------------- the decision
@dataclass(frozen=True)
class Decision:
    """The claim "``predictor`` ranks ``outcome`` best": ``direction`` +1 (holds), −1 (fails), 0 (inconclusive), or
    ``None`` with ``reason`` (not applicable). ``ranking`` holds every correlation, ``comparisons`` the paired
    intervals the decision read."""

    predictor: str
    outcome: str
    direction: int | None
    ranking: Ranking
    comparisons: tuple[Comparison, ...]
    reason: str = ""
    alpha: float = ALPHA

    @property
    def applicable(self) -> bool:
        return self.direction is not None

    @property
    def level(self) -> float | None:
        return self.comparisons[0].level if self.comparisons else None

    def numbers(self) -> dict:
        """The numbers behind the decision as an :class:`verify.report.claims.Outcome` wants them (no NaN):
        every predictor's ``ρ [interval]`` with its members and drops, the paired intervals, the best by point."""
        out: dict = {}
        for c in self.ranking.correlations:
            key = f"ρ({c.predictor}){_within(c.strata)} [{100 * c.level:g} % CI]"
            out[key] = f"{c.text()} (n = {c.n}, {c.dropped} NaN dropped" + _stratum_note(c) + (
                f", {c.undefined}/{c.resamples} resamples undefined)" if c.undefined else ")")
        for c in self.comparisons:
            key = f"ρ({c.predictor}) − ρ({c.other}){_within(c.strata)} [{100 * c.level:.4g} % CI]"
            out[key] = f"{c.text()} (n = {c.n}" + _stratum_note(c) + (
                f", {c.undefined}/{c.resamples} resamples undefined)" if c.undefined else ")")
        out["best by point ρ (reported, not judged)"] = self.ranking.best or "none defined"
        return out

    @property
    def needs(self) -> str:
        unresolved = [c.other for c in self.comparisons if c.direction == 0]
        return (f"intervals of ρ({self.predictor}) − ρ(q) that exclude 0 for q = {', '.join(unresolved)} (more "
                "members narrow them like 1/√n)") if unresolved else ""


def _within(strata) -> str:
    return f" within {strata}" if strata is not None else ""


def _stratum_note(c) -> str:
    """``, strata used: …; excluded: …`` for a stratified correlation or comparison, empty for a pooled one."""
    if c.strata is None:
        return ""
    used = ", ".join(f"{c.strata} = {s.label}: n {s.n}" for s in c.per_stratum) or "none"
    text = f", strata used: {used}"
    if c.excluded:
        text += "; excluded: " + "; ".join(f"{c.strata} = {e.label} ({e.reason})" for e in c.excluded)
    return text


def decide_best(frame: pd.DataFrame, outcome: str, predictor: str, predictors, *, seed: int = 0,
                resamples: int = BOOTSTRAP, alpha: float = ALPHA, strata: str | None = None) -> Decision:
    """Decide "``predictor`` ranks ``outcome`` best among ``predictors``" (see the module docstring): the paired
    intervals of ``ρ_predictor − ρ_q`` for each other predictor ``q`` with a defined correlation, each at the
    two-sided level ``1 − 2α/m`` (``m`` of them); holds if all lie above 0, fails if one lies below 0, inconclusive
    otherwise. Not applicable where ``predictor``'s correlation is undefined or no other one is defined. With
    ``strata`` (a column), on the stratified correlations and paired stratified bootstrap (module doc)."""
    dirs = _directions(predictors)
    if predictor not in dirs:
        raise RankingError(f"predictor {predictor!r} is not among the predictors {list(dirs)}.")
    ranking = best_predictor(frame, outcome, dirs, seed=seed, resamples=resamples, alpha=alpha, strata=strata)
    own = ranking.by_name()[predictor]
    if not own.defined:
        return Decision(predictor, outcome, None, ranking, (), f"ρ({predictor}) is undefined: {own.reason}", alpha)
    others = [c.predictor for c in ranking.correlations if c.defined and c.predictor != predictor]
    if not others:
        return Decision(predictor, outcome, None, ranking, (), "no other predictor has a defined correlation with "
                        f"{outcome} to compare with", alpha)
    comparisons = paired_comparisons(frame, predictor, outcome, dirs, seed=seed, resamples=resamples, alpha=alpha,
                                     others=others, strata=strata)
    directions = [c.direction for c in comparisons]
    direction = -1 if -1 in directions else 1 if all(d == 1 for d in directions) else 0
    return Decision(predictor, outcome, direction, ranking, comparisons, "", alpha)


def stratified_context(frame: pd.DataFrame, outcome: str, predictor: str, predictors, strata: str, *,
                       label: str | None = None, seed: int = 0, resamples: int = BOOTSTRAP,
                       alpha: float = ALPHA) -> dict:
    """Within-stratum figures to report beside a pooled decision, not judged: the stratified ``ρ`` of ``predictor``
    with its interval and per-stratum values, the best *other* predictor by stratified point ``ρ`` (the runner-up)
    with its ``ρ``, and the paired stratified interval of ``ρ_predictor − ρ_runner-up`` at the Bonferroni level
    ``1 − 2α/m`` of the ``m`` other predictors with a defined stratified correlation (the level a decision on the
    strata would use). Keys name ``label`` (default: ``strata``); every value is text or a number, never NaN."""
    dirs = _directions(predictors)
    if predictor not in dirs:
        raise RankingError(f"predictor {predictor!r} is not among the predictors {list(dirs)}.")
    label = label or strata
    tag = f"within {label} (reported, not judged)"
    cors = {name: correlation(frame, name, outcome, d, seed=seed, resamples=resamples, level=1 - 2 * alpha,
                              strata=strata)
            for name, d in dirs.items() if name in frame.columns}
    own = cors.get(predictor)
    out: dict = {}
    if own is None:
        return {f"ρ({predictor}) {tag}": f"undefined (column {predictor!r} is not in the frame)"}

    def described(c: Correlation) -> str:
        if not c.defined:
            return c.text()
        parts = ", ".join(f"{strata} = {st.label}: {st.rho:.3f} (n {st.n})" for st in c.per_stratum)
        text = f"{c.text()} (n = {c.n}; per stratum {parts}"
        if c.excluded:
            text += "; excluded " + "; ".join(f"{strata} = {e.label} ({e.reason})" for e in c.excluded)
        if c.undefined:
            text += f"; {c.undefined}/{c.resamples} resamples undefined"
        return text + ")"

    out[f"ρ({predictor}) {tag} [{100 * (1 - 2 * alpha):g} % CI]"] = described(own)
    others = sorted((c for name, c in cors.items() if name != predictor and c.defined), key=lambda c: -c.rho)
    if not others:
        out[f"runner-up {tag}"] = "none: no other measure has a defined within-stratum correlation"
        return out
    runner = others[0]
    out[f"runner-up {tag}"] = f"{runner.predictor}: {described(runner)}"
    if own.defined:
        level = bonferroni_level(len(others), alpha)
        c = compare(frame, predictor, runner.predictor, outcome, dirs, seed=seed, resamples=resamples, level=level,
                    strata=strata)
        out[f"ρ({predictor}) − ρ({runner.predictor}) {tag} [{100 * level:.4g} % CI]"] = (
            f"{c.text()} (n = {c.n}" + _stratum_note(c)
            + (f", {c.undefined}/{c.resamples} resamples undefined)" if c.undefined else ")"))
    return out


def disagreements(frame: pd.DataFrame, p: str, q: str, n: int = 5, *, directions=None,
                  outcome: str | None = None, label: str = "setting") -> pd.DataFrame:
    """The ``n`` members where predictors ``p`` and ``q`` rank most differently: their signed ranks (average ranks of
    ``direction · value`` over the members where both are known, ``+∞`` tied at the top) scaled to ``[0, 1]``, the
    difference ``rank_p − rank_q``, largest ``|difference|`` first; with ``outcome``, its scaled rank too (on the
    same members; NaN where the outcome is unknown). ``directions`` maps names to ±1 (``+1`` for both when
    omitted)."""
    dirs = _directions(directions) if directions is not None else {}
    dp, dq = dirs.get(p, 1), dirs.get(q, 1)
    x, z = _column(frame, p), _column(frame, q)
    keep = _known(x, z)
    m = int(keep.sum())
    if m < 2:
        raise UndefinedCorrelationError(f"ranks of {p!r} and {q!r} need at least 2 members with both known; {m} are.")
    part = frame.loc[keep].copy()

    def scaled(values, d):
        return (_ranks(d * values) - 1) / (m - 1)  # +inf at the top (bottom for direction −1), tied

    part[f"rank_{p}"] = scaled(x[keep], dp)
    part[f"rank_{q}"] = scaled(z[keep], dq)
    part["rank_difference"] = part[f"rank_{p}"] - part[f"rank_{q}"]
    columns = [c for c in (label, p, q) if c in part.columns] + [f"rank_{p}", f"rank_{q}", "rank_difference"]
    if outcome is not None:
        y = _column(part, outcome)
        known = ~np.isnan(y)
        r = np.full(m, np.nan)
        if known.sum() >= 2:
            r[known] = (_ranks(y[known]) - 1) / (known.sum() - 1)
        part[f"rank_{outcome}"] = r
        columns += [outcome, f"rank_{outcome}"]
    order = np.argsort(-np.abs(part["rank_difference"].to_numpy()), kind="stable")
    return part.iloc[order[:n]][columns].reset_index(drop=True)


__all__ = ["BOOTSTRAP", "MIN_MEMBERS", "Comparison", "Correlation", "Decision", "Rank", "Ranking", "RankingError",
           "StratifiedRank", "Stratum", "UndefinedCorrelationError", "best_predictor", "bonferroni_level", "compare",
           "correlation", "decide_best", "disagreements", "paired_comparisons", "percentile_interval", "spearman",
           "stratified_context", "stratified_resamples", "stratified_spearman"]
