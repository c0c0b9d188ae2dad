"""The samplers: score adapters, learned score networks, the naive composed reverse SDE/ODE, Feynman–Kac corrector
SMC, MCMC correctors, resampling, and the noise and jit/sharding helpers they run on. May use :mod:`closed_form` and :mod:`theory`, never
:mod:`verify.experiments` or :mod:`verify.report` (``tests/test_layout.py`` checks)."""

from verify.samplers.mcmc import MALA, ULA
from verify.samplers.naive import naive_ode_sample, naive_sde_sample
from verify.samplers.networks import (
    MLPParams,
    NetworkConfig,
    NetworkScore,
    TrainResult,
    init_network,
    mlp_apply,
    network_scores,
    train_network,
)
from verify.samplers.resampling import always, below_ess, effective_sample_size, multinomial, never, systematic
from verify.samplers.scores import (
    GaussianScore,
    MixtureScore,
    composed_score,
    exact_score,
    path_log_density,
    source_scores,
)
from verify.samplers.model import FKCModel, Kernel
from verify.samplers.naive import EULER_MARUYAMA, HEUN
from verify.samplers.smc import (
    AUTHORS,
    FKC,
    AuthorsState,
    FKCInfo,
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

__all__ = [
    "AUTHORS",
    "AuthorsState",
    "EULER_MARUYAMA",
    "FKC",
    "HEUN",
    "Kernel",
    "FKCInfo",
    "FKCModel",
    "FKCResult",
    "FKCState",
    "GaussianScore",
    "MALA",
    "MLPParams",
    "MixtureScore",
    "NetworkConfig",
    "NetworkScore",
    "TrainResult",
    "ULA",
    "always",
    "below_ess",
    "composed_score",
    "effective_sample_size",
    "exact_score",
    "fkc_init",
    "fkc_log_weight_rate",
    "fkc_model",
    "fkc_pick",
    "fkc_potential",
    "fkc_sample",
    "fkc_step",
    "init_network",
    "mlp_apply",
    "multinomial",
    "naive_ode_sample",
    "naive_sde_sample",
    "network_scores",
    "never",
    "path_log_density",
    "source_scores",
    "systematic",
    "train_network",
]
