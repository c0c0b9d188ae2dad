"""The claims the report gives a verdict on, and the checks that decide them.

Claims are those of ``paper_notes.md``: the abstract's three claims (**[paper]**) and this project's formal
statements (**[ours]**) that make them checkable. A :class:`Check` belongs to one experiment, reads that experiment's
saved CSV and returns an :class:`Outcome` with the numbers behind it. A claim's verdict is

* ``fails`` if any of its checks fails;
* ``holds`` if at least one check ran and every check holds;
* ``not applicable`` if no check could run (the experiment is not part of this run, or awaits code that has not
  landed), with the reason.

A check marked ``asserted`` is a bound or identity the theory guarantees: if it fails, ``python -m verify`` exits
with a non-zero status.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

HOLDS = "holds"
FAILS = "fails"
NOT_APPLICABLE = "not applicable"


@dataclass(frozen=True)
class Claim:
    """A statement the report decides. ``source`` is ``"paper"`` or ``"ours"`` as in ``paper_notes.md``."""

    id: str
    source: str
    statement: str


CLAIMS: tuple[Claim, ...] = (
    Claim("P1", "paper", "Compositional generation: a conditional diffusion model trained on some conditions is used "
          "to sample a compositionally defined target, e.g. the geometric combination Q ∝ P_a1 · P_a2 / P_0."),
    Claim("P2", "paper", "This is often infeasible for vanilla conditional diffusion models; the authors conjecture "
          "that no inference-time technique can efficiently produce target samples in certain settings."),
    Claim("P3", "paper", "Feynman–Kac correction (FKC) reduces inference-time approximation error, but score "
          "estimation error has a more catastrophic effect when the target is out-of-distribution for the sources."),
    Claim("F1", "ours", "Each of the paper's compositions is a proper distribution with an exactly known target: "
          "closed-form normalizer equal to the cubature one, and exact target samplers whose moments match."),
    Claim("F2", "ours", "Under factorized conditionals (FC) the geometric path π_t ∝ Π_i (q^i_t)^(w_i) equals the "
          "diffused target Q_t at every t, so naive composition has no inference-time error; under NFC it does not."),
    Claim("F3", "ours", "Exact output laws reproduce the paper's reference values (naive SDE output variance and "
          "KL(target‖naive) on NFC+ID and NFC+OOD) and the Girsanov bound holds for the reverse SDE."),
    Claim("F4", "ours", "As the number of particles K grows, FKC's output converges to its exact K → ∞ law (the "
          "Feynman–Kac law on its own grid, closed_form.fkc_limit_law), at rate 1/K, in every Gaussian paper "
          "setting, with exact scores and with a time-inconsistent score error."),
    Claim("F5", "ours", "At a fixed training-side score error, the error of the composed sampler grows with the OOD "
          "measure max_i log(1 + χ²(Q‖P_i)); the change-of-measure and sensitivity bounds hold."),
    Claim("F6", "ours", "The paper's ID/OOD labels match the exact OOD measure: in both Gaussian OOD settings "
          "1 + χ²(Q‖P_i) = ∞ for every source, in both Gaussian ID settings it is finite for every source."),
)

CLAIMS_BY_ID = {c.id: c for c in CLAIMS}


@dataclass(frozen=True)
class Outcome:
    """What a check found: ``status`` (holds / fails / not applicable), the numbers behind it and a short note."""

    status: str
    numbers: dict = field(default_factory=dict)
    note: str = ""

    def __post_init__(self):
        if self.status not in (HOLDS, FAILS, NOT_APPLICABLE):
            raise ValueError(f"Outcome status {self.status!r} is not one of {HOLDS!r}, {FAILS!r}, {NOT_APPLICABLE!r}.")
        for name, value in self.numbers.items():
            if isinstance(value, float) and math.isnan(value):
                raise ValueError(f"Outcome number {name!r} is NaN: a check must not report a missing value as a "
                                 "number.")

    @classmethod
    def decide(cls, holds: bool, numbers: dict, note: str = "") -> "Outcome":
        """``holds`` or ``fails`` according to ``holds``."""
        return cls(HOLDS if bool(holds) else FAILS, dict(numbers), note)


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
    if FAILS in statuses:
        return FAILS
    if HOLDS in statuses:
        return HOLDS
    return NOT_APPLICABLE
