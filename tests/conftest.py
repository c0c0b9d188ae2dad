"""Test configuration: float64 and strict dtype promotion on, a ``key`` fixture, a bounded Hypothesis profile."""

import jax
import pytest
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

settings.register_profile(
    "catcomp",
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.load_profile("catcomp")


@pytest.fixture
def key():
    """A fixed JAX PRNG key: every Monte Carlo test is reproducible."""
    return jax.random.key(20260606)
