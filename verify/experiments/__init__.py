"""The report's experiments: one module per registered experiment (a compute function returning a tidy DataFrame),
plus the sample metrics and error models they share. May use :mod:`verify.samplers`, never :mod:`verify.report`
(``tests/test_layout.py`` checks)."""

from verify.experiments.decomposition import error_decomposition, paper_gaussian_table
from verify.experiments.metrics import mmd2_unbiased, sliced_w2
from verify.experiments.montecarlo import (
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
    "paper_gaussian_table",
    "ress_inverse_monte_carlo",
    "sliced_w2",
]
