"""catcomp's closed forms: schedules, Gaussians, Gaussian mixtures and their geometric compositions.

Importing this package switches JAX to float64 before any array exists; every closed form here is meant to hold
to ``rtol ≈ 1e-10``.
"""

import jax

jax.config.update("jax_enable_x64", True)

from closed_form.composition import Composition, TargetSample, compose, start_law  # noqa: E402
from closed_form.divergences import chi2, kl, log1p_chi2, ress_inverse, total_variation_gaussians, w2  # noqa: E402
from closed_form.errors import (  # noqa: E402
    CatcompError,
    ImproperCompositionError,
    InvalidTimeError,
    InvalidWeightsError,
    NoClosedFormError,
    NonFiniteInputError,
    NotCodiagonalizableError,
    NotPositiveDefiniteError,
    ShapeMismatchError,
    WeightsNotIntegrableError,
)
from closed_form.families import (  # noqa: E402
    FAMILY_NAMES,
    FAMILY_SOURCE_LABELS,
    FamilyConfig,
    exact_log_ress_inverse,
    family_config,
    family_configs,
)
from closed_form.fields import CodiagonalField, FieldSum, add_fields, as_numpy_field, codiagonal_field  # noqa: E402
from closed_form.fkc_limit import FKCLimit, fkc_limit_law  # noqa: E402
from closed_form.gaussian import Gaussian  # noqa: E402
from closed_form.laws import euler_maruyama_law, ode_law, sde_law  # noqa: E402
from closed_form.mixture import GaussianMixture  # noqa: E402
from closed_form.population import (  # noqa: E402
    Member,
    Population,
    PopulationRejectionError,
    PopulationSpec,
    named_members,
    population_member,
    random_population,
)
from closed_form.products import gaussian_power_product  # noqa: E402
from closed_form.schedules import (  # noqa: E402
    CosineSchedule,
    Schedule,
    VPSchedule,
    diffused_covariance,
    diffused_variance,
    reverse_time_grid,
)
from closed_form.settings import (  # noqa: E402
    GAUSSIAN_SETTING_NAMES,
    MIXTURE_SETTING_NAMES,
    PAPER_WEIGHTS,
    SETTING_NAMES,
    NotGaussianSettingError,
    PAPER_SOURCE_LABELS,
    Setting,
    as_setting,
    paper_setting,
)

__all__ = [
    "CatcompError",
    "FAMILY_NAMES",
    "FAMILY_SOURCE_LABELS",
    "FamilyConfig",
    "FieldSum",
    "GAUSSIAN_SETTING_NAMES",
    "CodiagonalField",
    "Composition",
    "CosineSchedule",
    "FKCLimit",
    "Gaussian",
    "GaussianMixture",
    "ImproperCompositionError",
    "InvalidTimeError",
    "InvalidWeightsError",
    "Member",
    "MIXTURE_SETTING_NAMES",
    "NoClosedFormError",
    "NonFiniteInputError",
    "NotCodiagonalizableError",
    "NotPositiveDefiniteError",
    "PAPER_WEIGHTS",
    "NotGaussianSettingError",
    "PAPER_SOURCE_LABELS",
    "Population",
    "PopulationRejectionError",
    "PopulationSpec",
    "Setting",
    "SETTING_NAMES",
    "Schedule",
    "ShapeMismatchError",
    "TargetSample",
    "VPSchedule",
    "WeightsNotIntegrableError",
    "add_fields",
    "as_setting",
    "as_numpy_field",
    "chi2",
    "codiagonal_field",
    "compose",
    "diffused_covariance",
    "diffused_variance",
    "euler_maruyama_law",
    "exact_log_ress_inverse",
    "family_config",
    "family_configs",
    "fkc_limit_law",
    "gaussian_power_product",
    "kl",
    "log1p_chi2",
    "named_members",
    "ode_law",
    "paper_setting",
    "population_member",
    "random_population",
    "ress_inverse",
    "reverse_time_grid",
    "start_law",
    "sde_law",
    "total_variation_gaussians",
    "w2",
]
