"""Deciding a finding from noisy numbers: Student/Welch t margins, the one helper every check uses.

A Monte Carlo comparison is *resolved* when its difference is larger than ``t_(1−α, ν) · SE``, with the degrees of
freedom ``ν`` of the standard error (``n − 1`` for a mean over ``n`` runs; Welch–Satterthwaite for a difference of two
such means). With the normal quantile instead, a standard error from three runs would claim a one-sided false-alarm
rate of 2.3 % at "2 SE" where the true rate is 6–15 %; the t quantile keeps the stated rate. Every function returns
plain floats; :func:`resolve` maps a comparison to +1 (resolved in the claimed direction), −1 (resolved against it)
or 0 (not resolved), which :meth:`verify.report.claims.Outcome.resolve` turns into holds / fails / inconclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: One-sided level of every finding's decision: a difference is resolved when it exceeds t_(1−α, ν) standard errors.
ALPHA = 0.025


def t_quantile(dof: float, alpha: float = ALPHA) -> float:
    """``t_(1−α, ν)``: the one-sided Student quantile; the normal one for ``ν = ∞``.

    Raises
    ------
    ValueError
        For ``dof ≤ 0`` or ``α`` outside (0, ½).
    """
    from scipy.stats import norm, t

    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), got {alpha!r}.")
    if not dof > 0:
        raise ValueError(f"degrees of freedom must be positive, got {dof!r} (a standard error needs two runs).")
    return float(norm.isf(alpha) if math.isinf(dof) else t.isf(alpha, dof))


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo mean with its standard error and the degrees of freedom of that error."""

    mean: float
    se: float
    dof: float

    def margin(self, alpha: float = ALPHA) -> float:
        """``t_(1−α, dof) · se``."""
        return t_quantile(self.dof, alpha) * self.se


def mean_of_runs(values) -> Estimate:
    """Mean of independent runs, its standard error ``sd/√n`` and ``n − 1`` degrees of freedom.

    Raises
    ------
    ValueError
        For fewer than two finite values.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"a standard error needs at least two finite runs, got {x.tolist()}.")
    return Estimate(float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size)), float(x.size - 1))


def welch(a: Estimate, b: Estimate) -> Estimate:
    """``a − b`` with the Welch–Satterthwaite degrees of freedom of its standard error."""
    se2 = a.se**2 + b.se**2
    if se2 == 0:
        return Estimate(a.mean - b.mean, 0.0, math.inf)
    dof = se2**2 / ((a.se**4 / a.dof if a.se else 0.0) + (b.se**4 / b.dof if b.se else 0.0))
    return Estimate(a.mean - b.mean, math.sqrt(se2), float(dof))


def paired(a, b) -> Estimate:
    """The mean of the paired differences ``a_i − b_i`` of runs sharing their randomness (same keys)."""
    return mean_of_runs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))


def resolve(difference: Estimate, alpha: float = ALPHA) -> int:
    """+1 if ``difference.mean > t·se`` (resolved positive), −1 if ``< −t·se``, 0 otherwise. A zero standard error
    (an exact number) resolves any non-zero difference."""
    margin = difference.margin(alpha) if difference.se > 0 else 0.0
    if difference.mean > margin:
        return 1
    if difference.mean < -margin:
        return -1
    return 0


def resolve_below(value: Estimate, bound: float, alpha: float = ALPHA) -> int:
    """+1 if ``value`` is resolved below ``bound``, −1 if resolved above, 0 if within the margin."""
    return resolve(Estimate(bound - value.mean, value.se, value.dof), alpha)


def runs_to_resolve(difference: Estimate, runs: int, alpha: float = ALPHA) -> int | None:
    """About how many runs (now ``runs``) would resolve ``difference`` at its present size and spread: the standard
    error falls like ``1/√n``, so ``n ≈ runs · (t·se/|mean|)²`` (with the normal quantile). ``None`` for a zero
    difference, which no run count resolves."""
    if difference.mean == 0 or difference.se == 0:
        return None
    z = t_quantile(math.inf, alpha)
    return max(runs + 1, math.ceil(runs * (z * difference.se / abs(difference.mean)) ** 2))
