"""catcomp's verification layer: samplers, experiments and the report. May use :mod:`closed_form` and :mod:`theory`.

Importing it switches JAX to float64.
"""

import jax

jax.config.update("jax_enable_x64", True)

# Samplers: score adapters, resampling (schemes and strategies), naive SDE/ODE, FKC (sampler and kernel), MCMC
# correctors, sample metrics.
from verify.samplers.discretization import start_law  # noqa: E402
from verify.samplers.mcmc import MALA, ULA  # noqa: E402
from verify.experiments.metrics import mmd2_unbiased, sliced_w2  # noqa: E402
from verify.samplers.naive import naive_ode_sample, naive_sde_sample  # noqa: E402
from verify.samplers.resampling import always, below_ess, effective_sample_size, multinomial, never, systematic  # noqa: E402
from verify.samplers.scores import (  # noqa: E402
    GaussianScore,
    MixtureScore,
    composed_score,
    exact_score,
    path_log_density,
    source_scores,
)
from verify.samplers.smc import (  # noqa: E402
    FKCInfo,
    FKCModel,
    FKCResult,
    FKCState,
    fkc_init,
    fkc_log_weight_rate,
    fkc_model,
    fkc_pick,
    fkc_potential,
    fkc_sample,
    fkc_step,
)

# Exact laws: error decomposition and the paper's Gaussian table.
from verify.experiments.decomposition import error_decomposition, paper_gaussian_table  # noqa: E402

# Monte Carlo estimators with standard errors (mixtures' OOD quantifiers, refits, the mixture error's calibration).
from verify.experiments.montecarlo import (  # noqa: E402
    MonteCarloEstimate,
    calibrated_mixture_misspecification,
    fit_gaussian_mle,
    fraction_outside_hdr_monte_carlo,
    hdr_log_density_threshold,
    mixture_dsm_excess_monte_carlo,
    ress_inverse_monte_carlo,
)

__all__ = [
    "FKCInfo",
    "FKCModel",
    "FKCResult",
    "FKCState",
    "GaussianScore",
    "MALA",
    "MixtureScore",
    "MonteCarloEstimate",
    "ULA",
    "always",
    "below_ess",
    "calibrated_mixture_misspecification",
    "composed_score",
    "effective_sample_size",
    "error_decomposition",
    "exact_score",
    "fit_gaussian_mle",
    "fkc_init",
    "fkc_log_weight_rate",
    "fkc_model",
    "fkc_pick",
    "fkc_potential",
    "fkc_sample",
    "fkc_step",
    "fraction_outside_hdr_monte_carlo",
    "hdr_log_density_threshold",
    "mixture_dsm_excess_monte_carlo",
    "mmd2_unbiased",
    "multinomial",
    "naive_ode_sample",
    "naive_sde_sample",
    "never",
    "paper_gaussian_table",
    "path_log_density",
    "ress_inverse_monte_carlo",
    "sliced_w2",
    "source_scores",
    "start_law",
    "systematic",
]
