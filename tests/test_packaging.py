"""Packaging: each import package switches JAX to float64 on import; the README's usage example runs as written."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package", ["closed_form", "theory", "verify"])
def test_import_switches_jax_to_float64(package):
    code = (
        "import jax\n"
        "assert not jax.config.jax_enable_x64, 'x64 must start off for this test to mean anything'\n"
        f"import {package}\n"
        "import jax.numpy as jnp\n"
        "assert jax.config.jax_enable_x64\n"
        "assert jnp.zeros(3).dtype == jnp.float64, jnp.zeros(3).dtype\n"
        "assert jax.random.normal(jax.random.key(0), (2,)).dtype == jnp.float64\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "JAX_ENABLE_X64"}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env)


def test_layering_closed_form_imports_neither_theory_nor_verify():
    code = "import sys, closed_form\nassert 'theory' not in sys.modules and 'verify' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    code = "import sys, theory\nassert 'verify' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_readme_usage_example_runs_as_written():
    readme = (ROOT / "README.md").read_text()
    usage = readme.split("## Usage", 1)[1]
    block = re.search(r"```python\n(.*?)```", usage, re.S).group(1)
    out = subprocess.run([sys.executable, "-c", block], check=True, cwd=ROOT, capture_output=True, text=True)
    assert "rejection" in out.stdout


def test_distribution_includes_every_subpackage():
    """Each folder with an ``__init__.py`` under the three packages is found by setuptools' configuration."""
    import tomllib

    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    found = set(find_packages(where=str(ROOT), include=config["include"]))
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("closed_form", "theory", "verify")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert "theory.derivations" in on_disk
    assert on_disk <= found, on_disk - found


def test_derivations_are_pure_sympy():
    """The derivation modules import SymPy, never JAX (their numbers come from SymPy alone)."""
    import ast

    for path in (ROOT / "theory" / "derivations").glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not names & {"jax", "jaxlib", "closed_form", "verify"}, (path.name, names)
