r"""The ID→OOD family at fixed training-side error: inference-time, estimation and total error, exactly.

The family is ``a1 = diag(10, 1)``, ``a2 = diag(1, 10)``, base ``v·I`` with weights ``(1, 1, −1)``, from ``v = 20``
(NFC_ID) to ``v = 1.1`` (NFC_OOD). Exact quantities (Gaussian sources, affine errors) carry no Monte Carlo error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from closed_form import VPSchedule, fkc_limit_law, reverse_time_grid
from closed_form.divergences import kl, ress_inverse, w2
from closed_form.errors import WeightsNotIntegrableError
from closed_form.fields import add_fields
from closed_form.laws import sde_law
from closed_form.ood import fraction_outside_hdr
from closed_form.perturbations import weighted_field
from closed_form.settings import id_ood_family
from verify.analysis.error_models import misspecification_errors
from verify.report.figures import FigureSpec, stacked_split
from verify.report.registry import Experiment, grid
from verify.report.tables import Column, TableSpec


def _errors_row(composition, schedule, errors, t_min):
    """KL(Q_{t_min}‖·) and W2 of: naive exact, exact-target score + δ, naive + δ (all continuous-time SDE from Q_T),
    and FKC's K → ∞ limits: π_{t_min} with exact scores, and with the perturbed scores the continuous Feynman–Kac
    law :func:`closed_form.fkc_limit_law` started from π at the samplers' first grid time (``inf`` where the weights
    are not integrable). It does not assume that the perturbed scores are scores of diffused laws, so it stays the
    limit for time-inconsistent errors too."""
    q_min = composition.noised_target(schedule, t_min)
    start = composition.noised_target(schedule, schedule.T)
    delta = add_fields(*[weighted_field(w, e) for w, e in zip(composition.weights, errors)])
    laws = {
        "inference": sde_law(composition.naive_field(schedule), schedule, start, t_min),
        "estimation": sde_law(add_fields(composition.target_field(schedule), delta), schedule, start, t_min),
        "total": sde_law(add_fields(composition.naive_field(schedule), delta), schedule, start, t_min),
        "fkc_exact": composition.path_composition(schedule, t_min).target,
    }
    fields = [add_fields(f, e.field) for f, e in zip(composition.source_fields(schedule), errors)]
    fkc_start = composition.path_composition(schedule, float(reverse_time_grid(schedule, 1)[0])).target
    try:
        laws["fkc_perturbed"] = fkc_limit_law(fields, composition.weights, schedule, fkc_start, t_min=t_min).law
    except WeightsNotIntegrableError:
        laws["fkc_perturbed"] = None
    row = {}
    for name, law in laws.items():
        row[f"kl_{name}"] = float(kl(q_min, law)) if law is not None else np.inf
        row[f"w2_{name}"] = float(w2(q_min, law)) if law is not None else np.inf
    return row


def ood_family(base_variances=None, eps: float = 0.005, t_min: float = 1e-4, schedule=None) -> pd.DataFrame:
    r"""The ID→OOD family ``a1 = diag(10, 1)``, ``a2 = diag(1, 10)``, base ``v·I`` for ``v`` from 20 (NFC_ID) down to
    1.1 (NFC_OOD), at fixed training-side ``ε`` (DSM excess; worst-case source misspecification,
    :func:`misspecification_errors`). Exact: inference-time, estimation
    and total error of the continuous-time naive SDE, the FKC limits with exact and perturbed scores, and the OOD
    measures ``max_i log rESS_i⁻¹`` (``inf`` once ``2Σ_i − Σ_Q`` fails to be PD) and ``max_i Q(∉ HDR_95(P_i))``."""
    schedule = schedule or VPSchedule()
    if base_variances is None:
        base_variances = np.geomspace(20.0, 1.1, 16)
    rows = []
    for v in base_variances:
        comp = id_ood_family(float(v)).composition
        q = comp.target
        ress = [ress_inverse(q, p) for p in comp.sources]
        row = {
            "base_variance": float(v),
            "target_variance": float(q.cov[0, 0]),
            "log_ress_max": float(np.log(max(ress))),
            "outside_hdr_max": max(fraction_outside_hdr(q, p) for p in comp.sources),
            "eps": eps,
        }
        row.update(_errors_row(comp, schedule, misspecification_errors(comp, schedule, eps), t_min))
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- registration
FAMILY_BASE_VARIANCES = tuple(float(v) for v in np.geomspace(20.0, 1.1, 16))


def _family_derived(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.sort_values("outside_hdr_max", ignore_index=True)
    frame["base_label"] = [f"{v:.3g}" for v in frame["base_variance"]]
    return frame


EXPERIMENT = Experiment(
    name="ood_family",
    title="The ID→OOD family (base variance 20 → 1.1) at fixed training-side ε: inference vs estimation error",
    compute=ood_family,
    seed_argument=None,
    # One cell per base variance, so that the family runs in parallel and resumes point by point.
    default=grid(base_variances=tuple([v] for v in FAMILY_BASE_VARIANCES), eps=(0.005,)),
    quick=grid(base_variances=([20.0], [1.1]), eps=(0.005,)),
    derive=_family_derived,
    tables=(TableSpec(
        name="ood_family",
        caption="The ID→OOD family a1 = diag(10, 1), a2 = diag(1, 10), base v·I at training-side ε (DSM excess; "
                "worst-case source misspecification; exact): "
                "OOD measures and KL(Q_t_min‖·) of naive composition with exact scores (inference), of the exact "
                "target score plus the error (estimation), of naive with errors (total), and of FKC's limits",
        index=("base_label",), index_header="base variance v",
        columns=(
            Column("target_variance", "target variance"),
            Column("log_ress_max", "max log(1 + χ²)"),
            Column("outside_hdr_max", "Q outside HDR₉₅"),
            Column("kl_inference", "inference"),
            Column("kl_estimation", "estimation"),
            Column("kl_total", "total"),
            Column("kl_fkc_exact", "FKC exact"),
            Column("kl_fkc_perturbed", "FKC with ε"),
        ),
    ),),
    figures=(FigureSpec(
        "ood_family",
        "KL to the target against the OOD measure along the ID→OOD family: inference-time, estimation and total "
        "error of naive composition, and FKC's limit with perturbed scores.",
        lambda frame: stacked_split(frame, x="outside_hdr_max", parts=("kl_inference", "kl_estimation",
                                                                       "kl_fkc_perturbed"),
                                    total="kl_total", logx=True, xlabel="Q-mass outside the sources' 95 % HDRs",
                                    ylabel="KL(Q‖·)"),
    ),),
    checks=(),
)
