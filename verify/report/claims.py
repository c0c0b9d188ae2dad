"""The claims the report gives a verdict on, and the checks that decide them.

Claims are those of ``paper_notes.md``: the abstract's three claims (**[paper]**), the revision's proposals and
conjectures (**[revision]**) and this project's formal statements (**[ours]**) that make them checkable. A
:class:`Check` belongs to one experiment, reads that experiment's saved CSV and returns an :class:`Outcome` with the
numbers behind it and the cases (settings, families, pairs) it judged.

A check is *asserted* (a bound or identity the theory guarantees: ``holds`` or ``fails``, and a failure makes
``python -m verify`` exit non-zero) or a *finding* (an empirical statement that may come out either way). A finding
``holds`` or ``fails`` only where the run resolves it — a difference significant in one direction, a margin from its
standard errors — and is otherwise ``inconclusive``, with what it would need. A check with nothing to judge (no pair
present, no refit dropped, a tie) is ``not applicable`` with the reason. A claim's verdict is

* ``fails`` if any of its checks fails;
* ``inconclusive`` if none fails and some check is inconclusive;
* ``holds`` if at least one check holds and every check that could be judged holds;
* ``not applicable`` if no check could be judged, with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

HOLDS = "holds"
FAILS = "fails"
INCONCLUSIVE = "inconclusive"
NOT_APPLICABLE = "not applicable"
STATUSES = (HOLDS, FAILS, INCONCLUSIVE, NOT_APPLICABLE)
SOURCES = ("paper", "revision", "ours")


@dataclass(frozen=True)
class Claim:
    """A statement the report decides. ``source`` is ``"paper"`` (the abstract), ``"revision"`` (the revised paper's
    proposals and conjectures, as its authors' code runs them) or ``"ours"`` (this project's formal statements), as
    in ``paper_notes.md``."""

    id: str
    source: str
    statement: str

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"Claim {self.id!r}: source {self.source!r} is not one of {', '.join(SOURCES)}.")


CLAIMS: tuple[Claim, ...] = (
    Claim("P1", "paper", "Compositional generation: a conditional diffusion model trained on some conditions is used "
          "to sample a compositionally defined target, e.g. the geometric combination Q ∝ P_a1 · P_a2 / P_0."),
    Claim("P2", "paper", "This is often infeasible for vanilla conditional diffusion models; the authors conjecture "
          "that no inference-time technique can efficiently produce target samples in certain settings."),
    Claim("P3", "paper", "Feynman–Kac correction (FKC) reduces inference-time approximation error, but score "
          "estimation error has a more catastrophic effect when the target is out-of-distribution for the sources."),
    Claim("F1", "ours", "Each composition is a proper distribution with an exactly known target: closed-form "
          "normalizer equal to the cubature one, and exact target samplers whose moments match."),
    Claim("F2", "ours", "Under factorized conditionals (FC) the geometric path π_t ∝ Π_i (q^i_t)^(w_i) equals the "
          "diffused target Q_t at every t, so naive composition has no inference-time error; under NFC it does not."),
    Claim("F3", "ours", "Exact output laws reproduce the paper's reference values (naive SDE output variance and "
          "KL(target‖naive) on NFC+ID and NFC+OOD) and the Girsanov and coupling bounds hold for the reverse SDE."),
    Claim("F4", "ours", "As the number of particles K grows, FKC's output converges to its exact K → ∞ law (the "
          "Feynman–Kac law on its own grid, closed_form.fkc_limit_law), at rate 1/K, in every Gaussian setting, "
          "with exact scores and with a time-inconsistent score error."),
    Claim("F5", "ours", "At a fixed training-side score error, the harm done by that error grows as the target moves "
          "out of distribution: the worst-case amplification λ_max = sup KL(Q‖Q̂)/ε² grows along the ID→OOD family "
          "(base variance 20 → 1.1), and the sampling-side norm of a score error exceeds its training-side norm in "
          "the OOD setting but not in the ID one. (The exact OOD measure max_i log(1 + χ²(Q‖P_i)) does not order "
          "this family: it falls along it while λ_max rises.)"),
    Claim("F6", "ours", "The paper's ID/OOD labels match the exact OOD measure: in both Gaussian OOD settings "
          "1 + χ²(Q‖P_i) = ∞ for every source, in both Gaussian ID settings it is finite for every source."),
    Claim("F7", "ours", "The change-of-measure (transfer) bound on the sampling-side score error holds for every "
          "source and time where it is finite, and the first-order sensitivity bound TV(Q, Q̂) ≤ "
          "Σ_i |w_i| √(1 + χ²(Q‖P_i)) ‖u_i‖ (u_i = P̂_i/P_i − 1, its norm in L²(P_i)) holds for sources refit from "
          "finite samples."),
    Claim("F8", "ours", "Injected error models calibrated to a trained network's training-side DSM excess reproduce "
          "its sampling-side / training-side excess ratio."),
    Claim("F9", "ours", "Across random proper Gaussian compositions, the worst-case amplification λ_max = "
          "sup KL(Q‖Q̂)/ε² ranks the harm of score-estimation error best among the measures tested — the exact KL(Q‖FKC's "
          "limit with misspecified scores) at a fixed training-side error, and trained networks' FKC error above "
          "the exact-score level: its Spearman correlation with that harm exceeds "
          "every other measure's, each difference resolved by a paired bootstrap interval over the compositions."),
    Claim("R1", "revision", "The revision's sensitivity metric rESS_i⁻¹ = 1 + χ²(Q‖P_i) is what the authors' "
          "estimators measure: the Monte Carlo estimate never exceeds log N, matches the exact value where "
          "E w⁴ < ∞ and stays finite where the metric is ∞; the DDPM-bound (VLB) estimator recovers the exact "
          "metric over the full time window."),
    Claim("R2", "revision", "The authors' conjecture: the error amplification A = TV(Q, Q̂)/Σ_i TV(P_i, P̂_i) of "
          "sources refit by maximum likelihood is at most rESS^(−1/2). It is not a theorem (paper_notes.md gives "
          "a counterexample; only its L² version follows to first order)."),
    Claim("R3", "revision", "With exact scores, the authors' clip of FKC's weight rate (|g| ≤ 15) leaves FKC's "
          "output error unchanged within Monte Carlo error."),
    Claim("R4", "revision", "The revision's sensitivity metric max_i log rESS_i⁻¹ = max_i log(1 + χ²(Q‖P_i)) tells "
          "compositions where score-estimation error is harmful from those where it is not: across random proper "
          "Gaussian compositions it ranks the harm of score-estimation error (the exact KL(Q‖FKC's limit with "
          "misspecified scores) at a fixed training-side error, and trained networks' FKC error above the "
          "exact-score level) best among the measures tested, each difference of Spearman "
          "correlations resolved by a paired bootstrap interval over the compositions."),
)

CLAIMS_BY_ID = {c.id: c for c in CLAIMS}


@dataclass(frozen=True)
class Outcome:
    """What a check found: ``status`` (one of :data:`STATUSES`), the numbers behind it, a short note, and the cases
    it judged (``judged``: settings, families or pairs; empty when the check is not per case)."""

    status: str
    numbers: dict = field(default_factory=dict)
    note: str = ""
    judged: tuple = ()

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"Outcome status {self.status!r} is not one of {', '.join(map(repr, STATUSES))}.")
        for name, value in self.numbers.items():
            if isinstance(value, float) and math.isnan(value):
                raise ValueError(f"Outcome number {name!r} is NaN: a check must not report a missing value as a "
                                 "number.")
        object.__setattr__(self, "judged", tuple(str(c) for c in self.judged))

    @classmethod
    def decide(cls, holds: bool, numbers: dict, note: str = "", judged=()) -> "Outcome":
        """``holds`` or ``fails`` according to ``holds`` (for asserted checks, and findings without noise)."""
        return cls(HOLDS if bool(holds) else FAILS, dict(numbers), note, tuple(judged))

    @classmethod
    def resolve(cls, direction: int, numbers: dict, note: str = "", judged=(), needs: str = "") -> "Outcome":
        """A finding from a resolved comparison: ``direction`` +1 (resolved in the claimed direction: holds),
        −1 (resolved against it: fails) or 0 (not resolved: inconclusive, with ``needs`` saying what would resolve
        it, e.g. the number of runs)."""
        if direction not in (-1, 0, 1):
            raise ValueError(f"direction must be -1, 0 or 1, got {direction!r}.")
        if direction == 0:
            note = "; ".join(x for x in (note, f"not resolved by this run{': ' + needs if needs else ''}") if x)
            return cls(INCONCLUSIVE, dict(numbers), note, tuple(judged))
        return cls(HOLDS if direction > 0 else FAILS, dict(numbers), note, tuple(judged))

    @classmethod
    def not_applicable(cls, reason: str, numbers: dict | None = None) -> "Outcome":
        """Nothing to judge in this run; ``reason`` says why."""
        return cls(NOT_APPLICABLE, dict(numbers or {}), reason)


def combine(outcomes: list[Outcome], numbers: dict | None = None, note: str = "") -> Outcome:
    """One outcome from per-case outcomes (all cases must hold): ``fails`` if any fails, else ``inconclusive`` if
    any is, else ``holds`` if any holds, else ``not applicable``; ``judged`` lists the cases that were judged, and
    the numbers are merged (``numbers`` first)."""
    statuses = [o.status for o in outcomes]
    merged = dict(numbers or {})
    for o in outcomes:
        merged.update(o.numbers)
    judged = tuple(c for o in outcomes if o.status != NOT_APPLICABLE for c in o.judged)
    notes = "; ".join(dict.fromkeys(x for x in [note, *(o.note for o in outcomes)] if x))
    for status in (FAILS, INCONCLUSIVE, HOLDS):
        if status in statuses:
            return Outcome(status, merged, notes, judged)
    return Outcome(NOT_APPLICABLE, merged, notes or "no case to judge")


@dataclass(frozen=True)
class Check:
    """A test of one claim on one experiment's saved CSV.

    Parameters
    ----------
    claim : str
        Id of a claim in :data:`CLAIMS`.
    statement : str
        What exactly is checked, with its tolerance.
    evaluate : callable
        ``frame -> Outcome``.
    asserted : bool
        Whether a failure is a broken guarantee (non-zero exit status) rather than a finding.
    """

    claim: str
    statement: str
    evaluate: Callable[[pd.DataFrame], Outcome]
    asserted: bool = True

    def __post_init__(self):
        if self.claim not in CLAIMS_BY_ID:
            raise ValueError(f"Check refers to unknown claim {self.claim!r}; known: {', '.join(CLAIMS_BY_ID)}.")


@dataclass(frozen=True)
class CheckResult:
    """A check as it ran: the experiment it read, the check, and its outcome."""

    experiment: str
    check: Check
    outcome: Outcome


def verdict(results: list[CheckResult]) -> str:
    """A claim's verdict from its checks' outcomes (see the module docstring)."""
    statuses = [r.outcome.status for r in results]
    for status in (FAILS, INCONCLUSIVE, HOLDS):
        if status in statuses:
            return status
    return NOT_APPLICABLE
