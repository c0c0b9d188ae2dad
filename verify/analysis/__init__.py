"""What several experiments share: sample metrics, Monte Carlo estimators with standard errors, the training-side
error models, the exact error decomposition, exact error maps of score functions, and the statistics that decide
findings. May use :mod:`closed_form`, :mod:`theory` and :mod:`verify.samplers`; never an experiment."""

from verify.analysis.decomposition import error_decomposition
from verify.analysis.metrics import mmd2_unbiased, sliced_w2
from verify.analysis.montecarlo import (
    MonteCarloEstimate,
    calibrated_mixture_misspecification,
    fit_gaussian_mle,
    fraction_outside_hdr_monte_carlo,
    hdr_log_density_threshold,
    mixture_dsm_excess_monte_carlo,
    ress_inverse_monte_carlo,
)

__all__ = [
    "MonteCarloEstimate",
    "calibrated_mixture_misspecification",
    "error_decomposition",
    "fit_gaussian_mle",
    "fraction_outside_hdr_monte_carlo",
    "hdr_log_density_threshold",
    "mixture_dsm_excess_monte_carlo",
    "mmd2_unbiased",
    "ress_inverse_monte_carlo",
    "sliced_w2",
]
