"""The test session's persistent compilation cache (``tests/conftest.py``): when it is on, where it lives, that it
is bounded, and that a program loaded from it computes exactly what a freshly compiled one does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import pytest
from conftest import (
    COMPILATION_CACHE_VARIABLES,
    compilation_cache_environment,
    compilation_cache_settings,
    trim_compilation_cache,
)

ROOT = Path(__file__).resolve().parents[1]


class FakeCache:
    def __init__(self, root: Path):
        self.root = root

    def mkdir(self, name):
        path = self.root / name
        path.mkdir(exist_ok=True)
        return path


@pytest.fixture
def clean_env(monkeypatch):
    for name in COMPILATION_CACHE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_settings_put_every_program_in_the_pytest_cache_folder(clean_env, tmp_path):
    settings = compilation_cache_settings(SimpleNamespace(cache=FakeCache(tmp_path)))
    assert settings == {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax-compilation-cache"),
                        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    assert (tmp_path / "jax-compilation-cache").is_dir()


def test_settings_are_empty_when_turned_off_or_already_chosen_or_without_pytest_cache(clean_env, tmp_path):
    config = SimpleNamespace(cache=FakeCache(tmp_path))
    assert compilation_cache_settings(SimpleNamespace()) == {}  # -p no:cacheprovider
    clean_env.setenv("CATCOMP_TEST_COMPILATION_CACHE", "0")
    assert compilation_cache_settings(config) == {}
    clean_env.delenv("CATCOMP_TEST_COMPILATION_CACHE")
    clean_env.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "mine"))
    assert compilation_cache_settings(config) == {}
    assert not (tmp_path / "jax-compilation-cache").exists()


def test_trim_empties_the_folder_only_above_the_limit(tmp_path):
    for i in range(3):
        (tmp_path / f"entry{i}-cache").write_bytes(b"x" * 100)
    assert not trim_compilation_cache(tmp_path, limit=300)
    assert len(list(tmp_path.iterdir())) == 3
    assert trim_compilation_cache(tmp_path, limit=299)
    assert list(tmp_path.iterdir()) == []


def test_this_session_compiles_into_the_cache_when_it_is_on():
    folder = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if not folder:
        pytest.skip("the compilation cache is off in this session (CATCOMP_TEST_COMPILATION_CACHE=0 or "
                    "-p no:cacheprovider)")
    assert jax.config.jax_compilation_cache_dir == folder
    before = set(os.listdir(folder))
    # a program no other test compiles: a constant from this test's name and the process id
    constant = float(sum(map(ord, "compiles_into_the_cache")) + os.getpid())
    jax.jit(lambda x: jnp.sin(x) * constant)(jnp.arange(7.0)).block_until_ready()
    assert len(set(os.listdir(folder)) - before) >= 1


SAMPLER_RUN = textwrap.dedent("""
    import collections, json, jax, numpy as np
    events = collections.Counter()
    jax.monitoring.register_event_listener(lambda event, **kwargs: events.update([event]))
    import verify
    from closed_form import VPSchedule, paper_setting
    from verify import fkc_sample, source_scores
    comp = paper_setting("NFC_OOD").composition
    schedule = VPSchedule()
    res = fkc_sample(jax.random.key(3), source_scores(comp, schedule), comp.weights, schedule, 16, 4, n_steps=20)
    print(json.dumps({"samples": np.asarray(res.samples).tolist(),
                      "hits": events["/jax/compilation_cache/cache_hits"],
                      "misses": events["/jax/compilation_cache/cache_misses"]}))
""")


def _run_sampler(cache_dir: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in COMPILATION_CACHE_VARIABLES}
    if cache_dir is not None:
        env.update(compilation_cache_environment(cache_dir))
    out = subprocess.run([sys.executable, "-c", SAMPLER_RUN], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_program_loaded_from_the_cache_gives_bit_identical_samples(tmp_path):
    """The FKC sampler in three fresh processes: compiled and stored, loaded from the store (JAX reports cache hits
    and not one miss), and compiled without any cache (neither). The samples agree exactly."""
    stored = _run_sampler(tmp_path)
    assert stored["misses"] > 0 and os.listdir(tmp_path)
    loaded = _run_sampler(tmp_path)
    assert loaded["misses"] == 0 and loaded["hits"] >= stored["misses"], loaded
    uncached = _run_sampler(None)
    assert uncached["hits"] == uncached["misses"] == 0
    assert stored["samples"] == loaded["samples"] == uncached["samples"]
