"""``summary.md``: every claim of ``paper_notes.md`` with its verdict and the numbers behind it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from verify.report.claims import CLAIMS, FAILS, HOLDS, INCONCLUSIVE, NOT_APPLICABLE, CheckResult, verdict


@dataclass
class ExperimentRecord:
    """How one registered experiment fared in a run.

    ``status``: ``"ran"``, ``"error"``, ``"awaiting"`` (code it needs has not landed: ``missing``),
    ``"not selected"`` (left out by ``--only``), ``"skipped at --size quick"`` (no quick cells) or
    ``"not applicable"`` (to the settings given; ``error`` says why).
    """

    name: str
    title: str
    status: str
    claims: tuple[str, ...] = ()
    cells: int = 0
    computed: int = 0
    cached: int = 0
    wall_time: float = 0.0
    outputs: list[str] = field(default_factory=list)
    missing: tuple[str, ...] = ()
    error: str | None = None
    not_applicable_to: tuple[tuple[str, str], ...] = ()  # (setting, reason) of settings given that it skipped


def format_value(value) -> str:
    """A number for Markdown: 4 significant digits, scientific when tiny or huge; anything else as text."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        x = float(value)
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        if isinstance(value, int):
            return str(value)
        if x != 0 and not (1e-3 <= abs(x) < 1e5):
            return f"{x:.3e}"
        return f"{x:.4g}"
    return str(value)


def _numbers(numbers: dict) -> str:
    return ", ".join(f"{k} = {format_value(v)}" for k, v in numbers.items())


def reason_not_applicable(claim_id: str, records: list[ExperimentRecord]) -> str:
    related = [r for r in records if claim_id in r.claims]
    if not related:
        return "no registered experiment checks it yet"
    parts = []
    for r in related:
        if r.status == "awaiting":
            parts.append(f"`{r.name}` awaits {', '.join(f'`{m}`' for m in r.missing)}")
        elif r.status == "not selected":
            parts.append(f"`{r.name}` was not selected (`--only`)")
        elif r.status == "skipped at --size quick":
            parts.append(f"`{r.name}` runs only at the default size (not with `--size quick`)")
        elif r.status == "not applicable":
            parts.append(f"`{r.name}` is not applicable to these settings: {r.error}")
        elif r.status == "error":
            parts.append(f"`{r.name}` failed with an error")
    return "; ".join(parts) or "its checks did not apply"


def render_summary(records: list[ExperimentRecord], results: list[CheckResult], run_info: dict) -> str:
    """The text of ``summary.md``."""
    lines = ["# catcomp verification report", ""]
    lines += [f"- {k}: {v}" for k, v in run_info.items()]
    lines += ["", "Verdicts: **holds** (every check of the claim that could be judged holds), **fails** (some check "
              "fails), **inconclusive** (none fails, and some finding was not resolved by this run: it says what "
              "would resolve it), **not applicable** (no check of the claim could be judged here; the reason is "
              "given). A check is *asserted* (a guarantee of the theory: its failure is a bug) or a *finding* (an "
              "empirical statement that may come out either way). [paper] marks the paper's claims, [revision] the "
              "revised paper's proposals and conjectures, [ours] this project's formal statements "
              "(`paper_notes.md`).", ""]
    lines += ["| claim | source | verdict | checks |", "|---|---|---|---|"]
    by_claim = {c.id: [r for r in results if r.check.claim == c.id] for c in CLAIMS}
    for claim in CLAIMS:
        rs = by_claim[claim.id]
        counted = ", ".join(f"{sum(r.outcome.status == s for r in rs)} {s}" for s in (HOLDS, FAILS, INCONCLUSIVE, NOT_APPLICABLE)
                            if any(r.outcome.status == s for r in rs))
        lines.append(f"| {claim.id} | {claim.source} | **{verdict(rs)}** | {counted or '—'} |")
    for claim in CLAIMS:
        rs = by_claim[claim.id]
        v = verdict(rs)
        lines += ["", f"## {claim.id} [{claim.source}] — {v}", "", claim.statement, ""]
        if claim.source == "paper" and rs:
            lines += ["The verdict is on the formal statements checked below (`paper_notes.md`), not on the paper's "
                      "wording; a conjecture is never proved by an example.", ""]
        if v == NOT_APPLICABLE and not rs:
            lines.append(f"Not applicable: {reason_not_applicable(claim.id, records)}.")
        for r in rs:
            kind = "asserted" if r.check.asserted else "finding"
            outputs = next((rec.outputs for rec in records if rec.name == r.experiment), [])
            shown = f" Shown in {', '.join(f'`{o}`' for o in outputs)}." if outputs else ""
            note = f" {r.outcome.note.rstrip('.')}." if r.outcome.note else ""
            judged = f" Judged: {', '.join(r.outcome.judged)}." if r.outcome.judged else ""
            lines.append(f"- **{r.outcome.status}** ({kind}, experiment `{r.experiment}`): {r.check.statement}. "
                         f"Numbers: {_numbers(r.outcome.numbers) or 'none'}.{judged}{note}{shown}")
        for rec in records:
            if claim.id in rec.claims and rec.status == "ran" and rec.not_applicable_to:
                skipped = "; ".join(f"{name}: {why}" for name, why in rec.not_applicable_to)
                lines.append(f"- `{rec.name}` did not run on every setting given — {skipped}.")
        awaiting = [rec for rec in records if claim.id in rec.claims and rec.status != "ran"]
        if rs and awaiting:
            lines.append(f"- Not run here: {reason_not_applicable(claim.id, awaiting)}.")
    lines += ["", "## Experiments", "", "| experiment | status | cells | computed | cached | compute time (s) | note |",
              "|---|---|---|---|---|---|---|"]
    for r in records:
        note = r.title
        if r.status == "awaiting":
            note = f"awaits {', '.join(r.missing)}"
        elif r.status == "error":
            note = (r.error or "").strip().splitlines()[-1] if r.error else "error"
        elif r.status == "not applicable":
            note = r.error or note
        if r.not_applicable_to:
            note += "; not applicable to " + "; ".join(f"{name} ({why})" for name, why in r.not_applicable_to)
        lines.append(f"| `{r.name}` | {r.status} | {r.cells} | {r.computed} | {r.cached} | {r.wall_time:.2f} | "
                     f"{note.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def write_summary(path, records, results, run_info) -> Path:
    """Render and write ``summary.md`` atomically."""
    from verify.report.cache import atomic_write

    return atomic_write(Path(path), render_summary(records, results, run_info))
