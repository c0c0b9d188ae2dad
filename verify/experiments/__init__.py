"""The report's experiments, one module each, named as the experiment: its compute function (a tidy DataFrame per
cell) and its registration ``EXPERIMENT`` — cells per size, tables, figures and the checks that decide claims.
What several experiments share lives in :mod:`verify.analysis`. :data:`REGISTRY` lists them in the report's order.
"""

from verify.experiments import (
    amplification,
    fkc_clip_cost,
    fkc_convergence,
    fkc_sweep,
    gaussian_table,
    learned_sweep,
    naive_error_sweep,
    network_vs_injected,
    ood_family,
    ood_measures,
    paper_targets,
    path_gap,
    population,
    population_learned,
    ress_families,
    sampler_draws,
    score_error_along_t,
    score_error_maps,
    sensitivity,
    target_samples,
    transfer_bound,
    two_point,
    vlb_estimator,
)
from verify.report.registry import Registry as _Registry

#: The modules of the report's experiments, in the order the report runs and lists them.
MODULES = (
    paper_targets,
    target_samples,
    sampler_draws,
    path_gap,
    ood_measures,
    gaussian_table,
    fkc_sweep,
    fkc_convergence,
    ood_family,
    amplification,
    naive_error_sweep,
    score_error_along_t,
    score_error_maps,
    learned_sweep,
    network_vs_injected,
    transfer_bound,
    sensitivity,
    two_point,
    ress_families,
    vlb_estimator,
    fkc_clip_cost,
    population,
    population_learned,
)

#: What ``python -m verify`` runs.
REGISTRY = _Registry(module.EXPERIMENT for module in MODULES)

__all__ = ["MODULES", "REGISTRY"]
