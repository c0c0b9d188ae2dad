"""catcomp's verification layer: samplers, experiments and the report. May use :mod:`closed_form` and :mod:`theory`.

Importing it switches JAX to float64.
"""

import jax

jax.config.update("jax_enable_x64", True)

# Samplers: score adapters, learned score networks (train_network, network_scores), resampling (schemes and
# strategies), naive SDE/ODE, FKC (sampler and kernel), MCMC correctors; the samplers' exact start laws live in
# closed_form.
from closed_form import start_law  # noqa: E402
from verify.samplers import (  # noqa: E402
    AUTHORS,
    EULER_MARUYAMA,
    FKC,
    HEUN,
    AuthorsState,
    FKCInfo,
    FKCModel,
    FKCResult,
    FKCState,
    GaussianScore,
    Kernel,
    MALA,
    MLPParams,
    MixtureScore,
    NetworkConfig,
    NetworkScore,
    TrainResult,
    ULA,
    always,
    below_ess,
    composed_score,
    effective_sample_size,
    exact_score,
    fkc_init,
    fkc_log_weight_rate,
    fkc_model,
    fkc_pick,
    fkc_potential,
    fkc_sample,
    fkc_step,
    init_network,
    mlp_apply,
    multinomial,
    naive_ode_sample,
    naive_sde_sample,
    network_scores,
    never,
    path_log_density,
    source_scores,
    systematic,
    train_network,
)

# Experiments' shared tools: the exact error decomposition and the paper's Gaussian table, sample metrics, and Monte
# Carlo estimators with standard errors (mixtures' OOD quantifiers, refits, the mixture error's calibration).
from verify.analysis import (  # noqa: E402
    MonteCarloEstimate,
    calibrated_mixture_misspecification,
    error_decomposition,
    fit_gaussian_mle,
    fraction_outside_hdr_monte_carlo,
    hdr_log_density_threshold,
    mixture_dsm_excess_monte_carlo,
    mmd2_unbiased,
    ress_inverse_monte_carlo,
    sliced_w2,
)

import verify.analysis as _analysis  # noqa: E402
import verify.samplers as _samplers  # noqa: E402

__all__ = sorted([*_samplers.__all__, *_analysis.__all__, "start_law", "Diagnosis", "diagnose"])


def __getattr__(name):
    # diagnose and Diagnosis load verify.diagnosis (and with it the report's tables) on first use only, so that
    # ``import verify`` stays light.
    if name in ("diagnose", "Diagnosis"):
        from verify import diagnosis

        return getattr(diagnosis, name)
    raise AttributeError(f"module 'verify' has no attribute {name!r}")
