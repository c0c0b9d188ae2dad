"""Packaging: each import package switches JAX to float64 on import; the README's Python examples run as written; the
distribution ships every module (installed into a fresh venv and imported from there)."""

import json
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


def _readme_python_blocks() -> list[tuple[str, str]]:
    """``(section heading, code)`` for each ```python block of the README, in order."""
    readme = (ROOT / "README.md").read_text()
    return [(m.group(1).strip(), block)
            for m in re.finditer(r"^## (.*?)\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
            for block in re.findall(r"```python\n(.*?)```", m.group(2), re.S)]


README_BLOCKS = _readme_python_blocks()


def test_readme_has_python_examples():
    assert README_BLOCKS, "the README shows no ```python example"


@pytest.mark.parametrize("section, block", README_BLOCKS, ids=[s for s, _ in README_BLOCKS])
def test_readme_python_example_runs_as_written(section, block):
    """Each Python example of the README runs as written (from the repository root) and prints something."""
    out = subprocess.run([sys.executable, "-c", block], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, f"README section {section!r}:\n{out.stderr[-3000:]}"
    assert out.stdout.strip(), section


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


def _outer_environment_paths(cwd: Path) -> list[str]:
    """The import path of the interpreter running the tests, as a fresh process of it sees it from ``cwd``: its
    site-packages (a venv's own, or the system's) and whatever its ``.pth`` files and ``PYTHONPATH`` add, without
    the working directory and without any folder that holds a copy of our packages (a source tree)."""
    out = subprocess.run([sys.executable, "-c", "import json, sys; print(json.dumps(sys.path))"], check=True,
                         capture_output=True, text=True, cwd=cwd)
    paths = []
    for entry in json.loads(out.stdout):
        path = Path(entry) if entry else cwd
        if (not path.is_absolute() or not path.is_dir() or path.resolve() == cwd.resolve() or str(path) in paths
                or any((path / top / "__init__.py").exists() for top in ("closed_form", "theory", "verify"))):
            continue
        paths.append(str(path))
    return paths


def _fresh_venv_seeing(venv: Path, paths: list[str]) -> tuple[Path, Path]:
    """A venv made by this interpreter, without pip and without the base interpreter's site-packages, whose
    site-packages ends with ``paths`` (a ``.pth`` file: appended after its own, so what is installed into it comes
    first, and the ``.pth`` files of those folders are not run). Returns its python and its site-packages.

    ``--system-site-packages`` would not do: it shows the *base* interpreter's packages, which is not where the
    dependencies are when the tests run from a venv (the README's way), where the base has no JAX at all."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    own = set(json.loads(subprocess.run([str(python), "-c", "import json, sys; print(json.dumps(sys.path))"],
                                        check=True, capture_output=True, text=True).stdout))
    (site / "zz_outer_environment.pth").write_text("".join(f"{p}\n" for p in paths if p not in own))
    return python, site


@pytest.mark.slow
def test_distribution_installed_in_a_fresh_venv_ships_every_module(tmp_path):
    """Build the distribution from a copy of the source, install it (no dependencies) into a fresh venv that sees
    the running environment's packages for JAX and friends (after its own), and import every module of the source
    tree from it, outside the source tree: a module or subpackage missing from the distribution fails here, not in a
    user's install. The same whether the tests run from the system Python or from a plain venv."""
    import os
    import shutil

    src = tmp_path / "src"
    src.mkdir()
    for item in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / item, src / item)
    for top in ("closed_form", "theory", "verify"):
        shutil.copytree(ROOT / top, src / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    elsewhere = tmp_path / "elsewhere"  # not the source tree, so nothing can be imported from it by accident
    elsewhere.mkdir()
    outer = _outer_environment_paths(elsewhere)
    python, site = _fresh_venv_seeing(tmp_path / "venv", outer)
    how = _install_into(python, site, src, tmp_path)
    modules = _source_modules()
    assert {"theory.derivations", "verify.samplers.smc", "verify.experiments", "verify.report.cli"} <= set(modules)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # its entries are in the .pth, after `site`
    out = subprocess.run([str(python), "-c", _IMPORT_ALL, str(site), *modules], check=True, capture_output=True,
                         text=True, cwd=elsewhere, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["missing"] == [] and result["wrong"] == {}, (how, outer, result)
    assert sorted(result["found"]) == sorted(modules), how


def test_fresh_venv_sees_the_running_environment_not_the_base_interpreter(tmp_path):
    """The venv the distribution test installs into imports the dependencies from where this test's interpreter
    finds them (its venv, when run from one), its own site-packages first."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outer = _outer_environment_paths(elsewhere)
    python, site = _fresh_venv_seeing(tmp_path / "venv", outer)
    (site / "probe_first.py").write_text("")
    code = ("import importlib.util as u, json, sys\n"
            "print(json.dumps({'path': sys.path, 'prefix': sys.prefix, 'numpy': u.find_spec('numpy').origin,"
            " 'probe': u.find_spec('probe_first').origin}))")
    seen = json.loads(subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True,
                                     cwd=elsewhere).stdout)
    import numpy

    assert Path(seen["prefix"]).resolve() == (tmp_path / "venv").resolve()
    assert Path(seen["numpy"]).resolve() == Path(numpy.__file__).resolve()  # this environment's numpy, not another
    assert seen["probe"] == str(site / "probe_first.py")
    added = (site / "zz_outer_environment.pth").read_text().splitlines()
    assert added and set(added) <= set(outer)
    assert all(seen["path"].index(str(site)) < seen["path"].index(p) for p in added)


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
