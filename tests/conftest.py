"""Test configuration: float64 and strict dtype promotion on, a ``key`` fixture, a bounded Hypothesis profile, and two
watchdogs against hangs.

* Per test: a test still running after :data:`TEST_LIMIT_S` has the stacks of every thread of its process written to
  stderr, and the process exits (``faulthandler``, whose watchdog thread needs no GIL, so a hang inside C code that
  holds it is caught too). Under xdist the worker is replaced and pytest-rerunfailures reruns the test once;
  ``--only-rerun Timeout`` in ``pyproject.toml`` keeps failed assertions from ever being rerun.
* Per session: if the whole session is still running after :data:`SESSION_LIMIT_S` (it covers a run stuck between
  tests), the controlling process writes its stacks to stderr and exits with status 3, so that CI fails with a
  diagnosis instead of running into its own time limit.

Compiling is most of what the suite spends: XLA compiled programs are kept in JAX's persistent compilation cache
under pytest's cache folder (``.pytest_cache/d/jax-compilation-cache``), shared by the xdist workers and by the
processes the tests start (notebook kernels, ``python -m verify``). A program whose lowered StableHLO, compile options,
XLA flags, backend and JAX version all match is loaded instead of compiled, so results do not depend on the cache.
See :func:`compilation_cache_settings` for how to turn it off or clear it.
"""

import faulthandler
import os
import sys
import threading
from pathlib import Path

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


#: The longest test takes about a minute here; ten means stuck. ``CATCOMP_TEST_LIMIT_S`` overrides it.
TEST_LIMIT_S = float(os.environ.get("CATCOMP_TEST_LIMIT_S", 600))
#: The whole suite takes 4–10 minutes on the project's 2-core machine (``README.md``); 45 minutes means stuck.
#: ``CATCOMP_TEST_SESSION_LIMIT_S`` overrides it (to try the watchdog, say).
SESSION_LIMIT_S = float(os.environ.get("CATCOMP_TEST_SESSION_LIMIT_S", 45 * 60))
_STDERR = {}


#: The controlling process empties the compilation cache at the start of a session when it holds more than this (a
#: full run adds about 50 MB of small files; entries of code that has since changed are never read again). JAX's own
#: size limit (``jax_compilation_cache_max_size``) is not used: it rescans the whole folder under a file lock on
#: every write, which made a first run 13.2 min instead of 9.3 here. Without it JAX writes entries unlocked; a
#: worker that meets another's half-written entry gets a warning and compiles (a damaged entry fails to decompress).
COMPILATION_CACHE_LIMIT_BYTES = 2**30


def compilation_cache_settings(config) -> dict[str, str]:
    """The ``JAX_*`` environment variables that turn on the persistent compilation cache for this session, or ``{}``.

    ``{}`` when ``CATCOMP_TEST_COMPILATION_CACHE=0``, when ``JAX_COMPILATION_CACHE_DIR`` is already set (the user's
    cache wins; xdist workers inherit the controller's this way) or when pytest's cache is disabled
    (``-p no:cacheprovider``). ``pytest --cache-clear`` empties it, and so does :func:`trim_compilation_cache` once it
    outgrows :data:`COMPILATION_CACHE_LIMIT_BYTES`.
    """
    if os.environ.get("CATCOMP_TEST_COMPILATION_CACHE", "1") == "0" or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return {}
    cache = getattr(config, "cache", None)
    if cache is None:
        return {}
    return compilation_cache_environment(cache.mkdir("jax-compilation-cache"))


#: Every environment variable that decides whether and where this suite's processes cache compiled programs.
COMPILATION_CACHE_VARIABLES = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                               "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "CATCOMP_TEST_COMPILATION_CACHE")


def compilation_cache_environment(folder) -> dict[str, str]:
    """The ``JAX_*`` variables that make a JAX process keep every compiled program, however small, in ``folder``."""
    return {"JAX_COMPILATION_CACHE_DIR": str(folder), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def trim_compilation_cache(folder, limit: int = COMPILATION_CACHE_LIMIT_BYTES) -> bool:
    """Delete every file in ``folder`` if together they exceed ``limit`` bytes; return whether it did."""
    files = [f for f in Path(folder).iterdir() if f.is_file()]
    if sum(f.stat().st_size for f in files) <= limit:
        return False
    for f in files:
        f.unlink(missing_ok=True)
    return True


def _session_watchdog():
    sys.stderr.write(f"\ntests/conftest.py: the test session exceeded {SESSION_LIMIT_S:g} s; stacks follow.\n")
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()
    os._exit(3)


def pytest_configure(config):
    # Output capturing is suspended while plugins configure: fd 2 is the real stderr here, not a capture file.
    _STDERR["file"] = os.fdopen(os.dup(2), "w")
    # Before anything compiles. The environment carries it to the xdist workers and to every subprocess.
    settings = compilation_cache_settings(config)
    if settings:
        trim_compilation_cache(settings["JAX_COMPILATION_CACHE_DIR"])
        os.environ.update(settings)
        # JAX read its environment when conftest imported it, so this process is told directly.
        jax.config.update("jax_compilation_cache_dir", settings["JAX_COMPILATION_CACHE_DIR"])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    if os.environ.get("PYTEST_XDIST_WORKER") is None:  # the controlling process (or a run without xdist)
        timer = threading.Timer(SESSION_LIMIT_S, _session_watchdog)
        timer.daemon = True
        timer.start()
        config._catcomp_watchdog = timer


def pytest_unconfigure(config):
    timer = getattr(config, "_catcomp_watchdog", None)
    if timer is not None:
        timer.cancel()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    out = _STDERR["file"]
    faulthandler.dump_traceback_later(TEST_LIMIT_S, exit=True, file=out)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
