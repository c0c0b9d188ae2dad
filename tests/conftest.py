"""Test configuration: float64 and strict dtype promotion on, a ``key`` fixture, a bounded Hypothesis profile, and a
session watchdog.

Per test, ``pyproject.toml`` dumps the stacks of a test still running after 8 minutes and stops (then reruns once) one
running after 10. The watchdog covers what those cannot see, a run stuck between tests: if the whole session is still
running after :data:`SESSION_LIMIT_S`, the stacks of every thread of this process are written to stderr and it exits
with status 3, so that CI fails with a diagnosis instead of running into its own time limit.
"""

import faulthandler
import os
import sys
import threading

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


#: The whole suite takes about 8 minutes on the project's 2-core machine (``README.md``); 45 minutes means stuck.
#: ``CATCOMP_TEST_SESSION_LIMIT_S`` overrides it (to try the watchdog, say).
SESSION_LIMIT_S = float(os.environ.get("CATCOMP_TEST_SESSION_LIMIT_S", 45 * 60))


def _session_watchdog():
    sys.stderr.write(f"\ntests/conftest.py: the test session exceeded {SESSION_LIMIT_S:g} s; stacks follow.\n")
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()
    os._exit(3)


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER") is None:  # the controlling process (or a run without xdist)
        timer = threading.Timer(SESSION_LIMIT_S, _session_watchdog)
        timer.daemon = True
        timer.start()
        config._catcomp_watchdog = timer


def pytest_unconfigure(config):
    timer = getattr(config, "_catcomp_watchdog", None)
    if timer is not None:
        timer.cancel()
