"""``benchmarks/compile_cost.py``: the plugin tags each compilation with the test that caused it, and the summary adds
them up. (A measuring tool, so the test checks its bookkeeping, not any timing.)"""

import re
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
pytest_plugins = ["pytester"]


@pytest.fixture
def compile_cost(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import compile_cost

    return compile_cost


def test_plugin_tags_each_compilation_with_its_test_and_phase(pytester, compile_cost, tmp_path):
    pytester.makepyfile(test_inner="""
        import jax, jax.numpy as jnp, pytest

        @pytest.fixture
        def compiled_in_setup():
            def in_fixture(x):
                return jnp.cos(x) + 2.0
            return jax.jit(in_fixture)(jnp.arange(5.0)).block_until_ready()

        def test_compiles():
            jax.jit(lambda x: jnp.sin(x) * 3.0)(jnp.arange(7.0)).block_until_ready()

        def test_compiles_nothing(compiled_in_setup):
            assert compiled_in_setup.shape == (5,)
    """)
    result = pytester.runpytest_inprocess("-p", "compile_cost", "--compile-cost-dir", str(tmp_path / "cc"),
                                          "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:benchmark")
    result.assert_outcomes(passed=2)
    events = compile_cost.load(tmp_path / "cc")
    mine = [e for e in events if e["test"] == "test_inner.py::test_compiles"]
    assert {e["phase"] for e in mine} == {"tracing", "lowering", "XLA compilation"}
    assert any(e["program"] == "jit(<lambda>)" and e["phase"] == "XLA compilation" for e in mine)
    fixture = [e for e in events if e["program"] == "jit(in_fixture)"]
    assert fixture and {e["test"] for e in fixture} == {"test_inner.py::test_compiles_nothing (setup)"}
    assert not any(e["test"] == "test_inner.py::test_compiles_nothing" for e in events)  # its call compiles nothing
    assert all(e["seconds"] >= 0 for e in events)


def test_summary_adds_up_by_phase_file_test_and_program(compile_cost):
    events = [
        {"test": "tests/test_a.py::test_x", "phase": "XLA compilation", "program": "jit(f)", "seconds": 1.5},
        {"test": "tests/test_a.py::test_y (setup)", "phase": "XLA compilation", "program": "jit(add)", "seconds": 0.25},
        {"test": "tests/test_b.py::test_z", "phase": "XLA compilation", "program": "jit(add)", "seconds": 0.125},
        {"test": "tests/test_b.py::test_z", "phase": "lowering", "program": "jit(add)", "seconds": 0.5},
    ]
    text = compile_cost.summarize(events)
    assert "3 programs compiled" in text
    assert re.search(r"^  XLA compilation +1\.9$", text, re.M) and re.search(r"^  lowering +0\.5$", text, re.M)
    assert "2 programs under 0.3 s took 0.4 s, 1 larger ones 1.5 s" in text
    assert re.search(r"^ +1\.8 +2  tests/test_a\.py$", text, re.M)  # by file: 1.5 + 0.25
    assert re.search(r"^ +0\.4 +2  jit\(add\)$", text, re.M)  # by program: 0.25 + 0.125; lowering not counted


def test_summary_refuses_an_empty_folder(compile_cost, tmp_path):
    with pytest.raises(SystemExit, match="no compile-"):
        compile_cost.load(tmp_path)


def test_call_site_is_the_innermost_line_of_the_repository(compile_cost):
    # _call_site skips itself and the listener that calls it, then walks out to the first frame in this repository
    # outside benchmarks/: here, the line of `caller` that called the stand-in listener.
    def listener():
        return compile_cost._call_site()

    def caller():
        return listener(), caller.__code__.co_firstlineno + 1

    site, line = caller()
    assert site == f"tests/test_benchmark_compile_cost.py:{line}"
    events = [{"test": "t", "phase": "XLA compilation", "program": "jit(add)", "seconds": 0.5, "site": site},
              {"test": "t", "phase": "XLA compilation", "program": "jit(f)", "seconds": 0.25}]
    text = compile_cost.summarize(events)
    assert re.search(rf"^ +0\.5 +1  {re.escape(site)}$", text, re.M)
    assert re.search(r"^ +0\.2 +1  \?$", text, re.M)  # an event without a site (tracing, or outside the repository)
