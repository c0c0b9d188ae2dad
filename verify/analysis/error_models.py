r"""The training-side error model the exact experiments share: each Gaussian source misspecified at ``t = 0`` along
the worst direction, calibrated to a DSM excess ``ε²`` (affine errors, so every law and limit stays exact)."""

from __future__ import annotations

from closed_form.composition import geometric_field
from closed_form.laws import sde_law
from closed_form.perturbations import misspecification_error


def misspecification_errors(composition, schedule, eps: float):
    r"""The default training-side error model for Gaussian sources: every source misspecified at ``t = 0`` along
    the worst direction of :func:`theory.amplification.amplification`, calibrated so that the DSM excess (mean over
    sources) is ``eps²``, with the sign that maximizes ``KL(Q‖Q̂)``; returned as each source's exact
    :func:`~closed_form.perturbations.misspecification_error` (affine, so every law and limit stays exact)."""
    from theory.amplification import worst_case_misspecification

    fitted, _ = worst_case_misspecification(composition, schedule, eps)
    return [misspecification_error(s, f, schedule) for s, f in zip(composition.sources, fitted)]


def naive_with_errors_law(composition, fitted, schedule, t_min: float):
    r"""The continuous-time naive SDE's law at ``t_min`` (start ``Q_T``) driven by ``Σ_i w_i ∇log p̂^i_t``, the
    naive field of the misspecified sources (defined whether or not ``Q̂`` is proper)."""
    field = geometric_field(fitted, composition.weights, schedule)
    return sde_law(field, schedule, composition.noised_target(schedule, schedule.T), t_min)
