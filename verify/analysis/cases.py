"""Which cases a per-setting check judges, and how a family of per-case comparisons is decided.

A per-setting experiment writes what is known about each setting into its frame (:func:`case_columns`:
``conditionals`` FC / NFC / mixture / unknown, ``regime`` ID / OOD / unknown), so that its checks can pick the
settings a claim is about from the saved CSV alone — the paper's settings or a user's. :func:`missing_note` says
which of the settings a statement names were absent from the run, so that a check judged on fewer cases than its
statement names says so. :func:`family_direction` decides one case of a claim that must hold in every case, with
Student/Welch t margins (:mod:`verify.analysis.stats`) and a family-wise false-alarm rate stated both ways.
"""

from __future__ import annotations

import pandas as pd

from verify.analysis.stats import ALPHA, Estimate, resolve

UNKNOWN = "unknown"


def conditionals_label(setting) -> str:
    """``"FC"`` / ``"NFC"`` where the setting says whether its conditionals factorize; ``"mixture"`` for a setting
    with a Gaussian-mixture source and no label; ``"unknown"`` otherwise."""
    if setting.factorized is not None:
        return "FC" if setting.factorized else "NFC"
    return "mixture" if not setting.is_gaussian else UNKNOWN


def regime_label(setting) -> str:
    """``"ID"`` / ``"OOD"`` from ``setting.in_distribution``; ``"unknown"`` where it is ``None``."""
    if setting.in_distribution is None:
        return UNKNOWN
    return "ID" if setting.in_distribution else "OOD"


def case_columns(setting) -> dict:
    """The columns a per-setting frame carries so that its checks can select cases: ``conditionals``, ``regime``."""
    return {"conditionals": conditionals_label(setting), "regime": regime_label(setting)}


def labels_of(frame: pd.DataFrame, column: str) -> dict:
    """``{setting: label}`` from ``frame[column]``; for frames saved without the column (older CSVs), the paper's
    labels by name (:func:`closed_form.paper_setting`), ``"unknown"`` for other names."""
    from closed_form import SETTING_NAMES, paper_setting

    names = list(dict.fromkeys(frame["setting"]))
    if column in frame.columns:
        first = frame.drop_duplicates("setting").set_index("setting")[column]
        return {name: str(first[name]) for name in names}
    known = {"conditionals": conditionals_label, "regime": regime_label}[column]
    return {name: known(paper_setting(name)) if name in SETTING_NAMES else UNKNOWN for name in names}


def missing_note(judged, named, present=None) -> str:
    """``""`` when every setting of ``named`` is in the run; otherwise a sentence naming the settings judged and the
    named ones missing from the run (``named``: the settings the statement names, e.g. the paper's NFC and mixture
    settings; ``present``: the run's settings, ``judged`` by default)."""
    judged = list(dict.fromkeys(judged))
    present = set(judged if present is None else present)
    missing = [s for s in named if s not in present]
    if not missing:
        return ""
    return (f"judged {len(judged)} setting(s) ({', '.join(judged) or 'none'}); the statement names "
            f"{', '.join(named)}, of which {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in this "
            "run")


def family_direction(difference: Estimate, n_cases: int, alpha: float = ALPHA) -> int:
    """One case of a claim that must hold in every one of ``n_cases`` cases: +1 when ``difference`` is resolved
    positive at level ``alpha`` (so "holds in every case" has false-alarm rate ≤ α: it needs each case resolved),
    −1 when resolved negative at ``alpha / n_cases`` (Bonferroni, so "fails in some case" has false-alarm rate ≤ α
    over the family), 0 otherwise."""
    if resolve(difference, alpha) == 1:
        return 1
    return -1 if resolve(difference, alpha / max(1, int(n_cases))) == -1 else 0


def scatter_reason(setting) -> str | None:
    """``applies_to`` of the scatter experiments (draws plotted by their first two coordinates): the reason a
    setting does not apply (dimension 1), or ``None``."""
    if setting.dim >= 2:
        return None
    return f"a scatter of the first two coordinates needs dimension ≥ 2; {setting.name} has d = {setting.dim}"


def require_scatter(setting, what: str) -> None:
    """Raise :class:`~closed_form.errors.ShapeMismatchError` naming ``what`` where :func:`scatter_reason` gives one."""
    from closed_form.errors import ShapeMismatchError

    reason = scatter_reason(setting)
    if reason:
        raise ShapeMismatchError(f"{what}: {reason}; use a setting of dimension 2 or more.")
