r"""The catastrophe as a number: amplification of training-side error, and where it overtakes inference error.

Exact throughout (Gaussian settings, misspecified sources diffused exactly; :mod:`theory.amplification`):

* :func:`amplification_row` — per composition (a paper setting, or a point ``v`` of the ID→OOD family
  ``a1 = diag(10, 1)``, ``a2 = diag(1, 10)``, base ``v·I``): the worst-case amplification
  ``λ_max = sup_δ lim KL(Q‖Q̂_δ)/ε(δ)²`` beside ``max_i log(1 + χ²(Q‖P_i))``; the naive sampler's inference-time
  ``KL(Q_{t_min}‖naive law)``; the crossover ``ε`` at which the estimation error's ``KL(Q_{t_min}‖Q̂_{δ,t_min})``
  reaches it; and, at that crossing ``δ``, the naive sampler *with* the misspecified scores.

The sweep of training-side ``ε`` along the worst direction is :mod:`verify.experiments.naive_error_sweep`.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd

from closed_form import Gaussian, VPSchedule, compose, paper_setting
from closed_form.divergences import kl, ress_inverse
from closed_form.errors import CatcompError
from closed_form.composition import geometric_field
from closed_form.laws import sde_law
from closed_form.ood import fraction_outside_hdr
from closed_form.perturbations import misspecification_error
from theory.amplification import (
    amplification,
    crossover,
    perturbed_sources_checked,
    worst_case_misspecification,
)

#: Below this inference-time KL naive composition counts as exact: it is the tolerance of the asserted F2 check that
#: the naive SDE reproduces ``Q`` in the FC settings (the moment ODEs are integrated at ``rtol = 1e-10``). A
#: crossover is then ``ε = 0``: any training-side error exceeds a zero inference error.
NAIVE_EXACT_KL = 1e-10

SOURCE_NAMES = ("a1", "a2", "base")

#: Training-side ε at which the sampling-side DSM integrals are reported (the FKC sweep's ε).
SAMPLING_SIDE_EPS = 0.005


def family_composition(base_variance: float):
    """The ID→OOD family member with base ``v·I`` (``v = 20``: NFC_ID; ``v = 1.1``: NFC_OOD)."""
    a1 = Gaussian(np.zeros(2), np.diag([10.0, 1.0]))
    a2 = Gaussian(np.zeros(2), np.diag([1.0, 10.0]))
    return compose([a1, a2, Gaussian.isotropic(np.zeros(2), float(base_variance))], [1.0, 1.0, -1.0])


def _composition(setting, base_variance):
    if (setting is None) == (base_variance is None):
        raise CatcompError("pass exactly one of setting (a Gaussian paper setting) and base_variance (a family "
                           "member).")
    if setting is not None:
        s = paper_setting(setting)
        if not all(isinstance(src, Gaussian) for src in s.sources):
            raise CatcompError(f"{setting} has mixture sources; the amplification is exact for Gaussian settings.")
        return "paper", setting, s.composition
    return "ID→OOD", f"v={base_variance:.4g}", family_composition(base_variance)


def naive_with_errors_law(composition, fitted, schedule, t_min: float):
    r"""The continuous-time naive SDE's law at ``t_min`` (start ``Q_T``) driven by ``Σ_i w_i ∇log p̂^i_t``, the
    naive field of the misspecified sources (defined whether or not ``Q̂`` is proper)."""
    field = geometric_field(fitted, composition.weights, schedule)
    return sde_law(field, schedule, composition.noised_target(schedule, schedule.T), t_min)


def sampling_side_eps(composition, fitted, schedule) -> tuple[float, float]:
    r"""The DSM integral of the misspecified scores under the diffused target and under the geometric path,
    ``(√((1/n)Σ_i (1/T)∫σ_t² E_{Q_t}‖ŝ_i − s_i‖² dt), same under π_t)``: where a sampler pays the error that
    training measured under ``q^i_t``. ``inf`` when an integrand is (the path's law does not exist)."""
    naive = composition.naive_field(schedule)

    def path_law(t):  # π_t = N(A_t⁻¹b_t, A_t⁻¹) from the naive field, traceable in t
        a, b = naive(t)
        cov = jnp.linalg.inv(0.5 * (a + a.T))
        return Gaussian._unchecked(cov @ b, cov)

    out = []
    for path in (lambda t: composition.noised_target(schedule, t), path_law):
        total = 0.0
        for src, fit in zip(composition.sources, fitted):
            total += misspecification_error(src, fit, schedule).dsm_excess(path)
        out.append(float(np.sqrt(total / len(fitted))))
    return out[0], out[1]


def amplification_row(setting: str | None = None, base_variance: float | None = None,
                      t_min: float = 1e-4) -> pd.DataFrame:
    """One row (see the module doc) for a Gaussian paper setting or a member of the ID→OOD family."""
    schedule = VPSchedule()
    family, label, comp = _composition(setting, base_variance)
    q = comp.target
    amp = amplification(comp, schedule)
    lam = amp.eigenvalues
    top = lam[-1]
    multiplicity = int(np.sum(np.abs(lam - top) <= 1e-8 * abs(top)))
    q_min = comp.noised_target(schedule, t_min)
    naive = sde_law(comp.naive_field(schedule), schedule, comp.noised_target(schedule, schedule.T), t_min)
    kl_inference = float(kl(q_min, naive))
    row = {
        "family": family, "setting": label,
        "base_variance": float(np.asarray(comp.sources[2].cov)[0, 0]),
        "log_ress_max": float(np.log(max(ress_inverse(q, p) for p in comp.sources))),
        "outside_hdr_max": max(fraction_outside_hdr(q, p) for p in comp.sources),
        "amplification": float(top), "multiplicity": multiplicity,
        "next_eigenvalue": float(lam[-1 - multiplicity]) if multiplicity < len(lam) else float("nan"),
        **{f"share_{n}": float(x) for n, x in zip(SOURCE_NAMES, amp.source_share)},
        "kl_inference": kl_inference,
    }
    try:
        fitted, _ = worst_case_misspecification(comp, schedule, SAMPLING_SIDE_EPS, amp)
        row["eps_under_target"], row["eps_under_path"] = sampling_side_eps(comp, fitted, schedule)
    except CatcompError:  # the worst direction leaves the PD cone before this ε: nothing to measure
        row["eps_under_target"] = row["eps_under_path"] = float("nan")
    if kl_inference < NAIVE_EXACT_KL:
        row.update(crossover_eps=0.0, crossover_eps_second_order=0.0, kl_naive_errors_at_crossover=float("nan"),
                   naive_exact=True)
        return pd.DataFrame([row])
    cross = crossover(comp, schedule, kl_inference, amp, t_min=t_min)
    row.update(crossover_eps=cross.eps, crossover_eps_second_order=float(np.sqrt(kl_inference / top)),
               naive_exact=False)
    if np.isfinite(cross.eps):
        fitted = perturbed_sources_checked(comp.sources, cross.delta)
        row["kl_naive_errors_at_crossover"] = float(kl(q_min, naive_with_errors_law(comp, fitted, schedule, t_min)))
    else:
        row["kl_naive_errors_at_crossover"] = float("nan")
    return pd.DataFrame([row])
