"""Packaging: each import package switches JAX to float64 on import; the README's usage example runs as written; the
distribution ships every module (installed into a fresh venv and imported from there)."""

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


def _source_modules() -> list[str]:
    """Every module of the three packages in the source tree, as dotted names (packages by their own name)."""
    names = []
    for top in ("closed_form", "theory", "verify"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


_IMPORT_ALL = r"""
import importlib, importlib.util, json, sys
prefix = sys.argv[1]
found, wrong, missing = [], {}, []
for name in sys.argv[2:]:
    try:
        # A __main__ is a command line (theory.derivations' prints its notes): locate it, do not run it.
        origin = (importlib.util.find_spec(name).origin if name.endswith("__main__")
                  else importlib.import_module(name).__file__)
    except ImportError as err:
        missing.append(f"{name}: {err}")
        continue
    (found.append(name) if origin.startswith(prefix) else wrong.__setitem__(name, origin))
print(json.dumps({"found": found, "wrong": wrong, "missing": missing}))
"""


def _can_build_wheels() -> bool:
    """Whether setuptools can build a wheel without build isolation (its own bdist_wheel from 70.1, else ``wheel``)."""
    import importlib.util

    import setuptools

    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def _install_into(venv_python: Path, site: Path, src: Path, work: Path) -> str:
    """Install the distribution built from ``src`` into the venv, no dependencies; returns how it was built.

    Where setuptools can build wheels here: ``pip wheel`` then ``pip install`` of the wheel. Otherwise (setuptools
    before 70.1 without the ``wheel`` package, which the ``dev`` extra installs) the files a wheel would hold are selected by setuptools' ``build_py`` from the same configuration, which is the step of
    ``bdist_wheel`` that decides what ships, and copied into the venv's site-packages.
    """
    import shutil

    if _can_build_wheels():
        wheels = work / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "--quiet",
                        "-w", str(wheels)], check=True, cwd=src, capture_output=True)
        (wheel,) = wheels.glob("catcomp-*.whl")
        subprocess.run([sys.executable, "-m", "pip", "--python", str(venv_python), "install", "--no-deps",
                        "--no-index", "--quiet", str(wheel)], check=True, capture_output=True)
        return "wheel"
    lib = work / "lib"
    subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py", "--build-lib",
                    str(lib)], check=True, cwd=src, capture_output=True)
    shutil.copytree(lib, site, dirs_exist_ok=True)
    return "build_py"


@pytest.mark.slow
def test_distribution_installed_in_a_fresh_venv_ships_every_module(tmp_path):
    """Build the distribution from a copy of the source, install it (no dependencies) into a fresh venv that sees
    the system's site-packages for JAX and friends, and import every module of the source tree from it, outside the
    source tree: a module or subpackage missing from the distribution fails here, not in a user's install."""
    import json
    import shutil

    src = tmp_path / "src"
    src.mkdir()
    for item in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / item, src / item)
    for top in ("closed_form", "theory", "verify"):
        shutil.copytree(ROOT / top, src / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    how = _install_into(python, site, src, tmp_path)
    modules = _source_modules()
    assert {"theory.derivations", "verify.samplers.smc", "verify.experiments", "verify.report.cli"} <= set(modules)
    elsewhere = tmp_path / "elsewhere"  # not the source tree, so nothing can be imported from it by accident
    elsewhere.mkdir()
    out = subprocess.run([str(python), "-c", _IMPORT_ALL, str(site), *modules], check=True, capture_output=True,
                         text=True, cwd=elsewhere)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["missing"] == [] and result["wrong"] == {}, (how, result)
    assert sorted(result["found"]) == sorted(modules), how


@pytest.mark.parametrize("package", ["closed_form", "theory", "verify", "verify.samplers", "verify.experiments",
                                     "verify.report"])
def test_package_all_lists_exactly_its_public_names(package):
    """``__all__`` names only what the package defines, and every public non-module name the package exposes."""
    import importlib
    import types

    mod = importlib.import_module(package)
    assert len(mod.__all__) == len(set(mod.__all__)), "duplicates in __all__"
    assert [n for n in mod.__all__ if not hasattr(mod, n)] == []
    exposed = {n for n, v in vars(mod).items()
               if not n.startswith("_") and not isinstance(v, types.ModuleType) and n != "jax"}
    assert exposed <= set(mod.__all__), exposed - set(mod.__all__)


def test_no_package_imports_another_packages_private_modules():
    """Across closed_form, theory, verify, tests, benchmarks and the notebooks' code, an underscore module of a
    package is imported only from inside that package."""
    import ast
    import json

    def imported_modules(tree):
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                yield from (a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield node.module
                # ``from pkg import name``: a module only if ``pkg/name.py`` or ``pkg/name/`` exists (else a name).
                base = ROOT.joinpath(*node.module.split("."))
                yield from (f"{node.module}.{a.name}" for a in node.names
                            if (base / f"{a.name}.py").exists() or (base / a.name).is_dir())

    sources = [(p, p.read_text()) for top in ("closed_form", "theory", "verify", "tests", "benchmarks")
               for p in (ROOT / top).rglob("*.py")]
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        sources.append((nb, "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))))
    offenders = []
    for path, text in sources:
        own = path.relative_to(ROOT).parts[0]
        for name in imported_modules(ast.parse(text)):
            parts = name.split(".")
            if parts[0] in ("closed_form", "theory", "verify") and parts[0] != own:
                if any(p.startswith("_") and not (p.startswith("__") and p.endswith("__")) for p in parts[1:]):
                    offenders.append((str(path.relative_to(ROOT)), name))
    assert offenders == []
