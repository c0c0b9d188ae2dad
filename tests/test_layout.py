"""The package layout's one-way doors, read from the source with ``ast`` (nothing is imported to check them):

    closed_form  ←  theory  ←  verify.samplers  ←  verify.analysis  ←  verify.report  ←  verify.experiments

A module may import only packages to its left (and its own). Every import statement counts, including ones inside
functions and relative ones; ``from verify import experiments`` counts as importing ``verify.experiments``.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: For each layer (a dotted prefix), the packages its modules must not import (each forbids its subpackages too).
#: To a layer inside verify, a forbidden ``verify`` means the facade module alone (``import verify``, ``from verify
#: import fkc_sample``): the samplers and the shared analysis may not use it because its ``__init__`` imports them.
FORBIDDEN = {
    "closed_form": ("theory", "verify"),
    "theory": ("verify",),
    "verify.samplers": ("verify.analysis", "verify.experiments", "verify.report", "verify"),
    "verify.analysis": ("verify.experiments", "verify.report", "verify"),
    "verify.report": ("verify.experiments",),  # the report renders and decides; it names no experiment
    "verify.__init__": ("verify.report", "verify.experiments"),  # the facade: ``import verify`` stays light
}


def _layer(module: str) -> str | None:
    if module == "verify":
        return "verify.__init__"
    for prefix in sorted(FORBIDDEN, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return None


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module ``source`` (the text of ``module``) imports, as absolute dotted names. ``from a import b`` yields
    ``a`` and ``a.b`` (``b`` may be a submodule); relative imports are resolved against ``module``'s package."""
    package = module if is_package else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            out.add(target)
            out.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
    return out


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def door_violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """The imports of ``source`` (module ``module``) that go through a closed door, as ``"module imports name"``."""
    layer = _layer(module)
    if layer is None:
        return []
    bad = []
    for name in sorted(imported_modules(source, module, is_package)):
        for closed in FORBIDDEN[layer]:
            if closed == "verify" and layer.startswith("verify.") and name != "verify":  # the facade alone
                continue
            if _inside(name, closed):
                bad.append(f"{module} imports {name}")
                break
    return bad


def _modules():
    for top in ("closed_form", "theory", "verify"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            yield pytest.param(path, ".".join(parts[:-1] if is_package else parts), is_package,
                               id=path.relative_to(ROOT).as_posix())


@pytest.mark.parametrize("path, module, is_package", list(_modules()))
def test_every_module_keeps_the_one_way_doors(path, module, is_package):
    assert door_violations(path.read_text(), module, is_package) == []


def test_the_layout_has_its_three_subpackages_and_no_loose_modules():
    """verify holds the samplers, analysis, experiments and report subpackages and, besides them, its facade and the
    two user-facing modules: diagnose (verify.diagnosis) and the notebooks' executed copies (verify.notebooks)."""
    packages = {p.parent.name for p in (ROOT / "verify").glob("*/__init__.py")}
    assert packages == {"samplers", "analysis", "experiments", "report"}, packages
    assert {p.name for p in (ROOT / "verify").glob("*.py")} == {"__init__.py", "__main__.py", "diagnosis.py",
                                                                 "notebooks.py"}


def test_every_registered_experiment_computes_in_verify_experiments():
    from verify.experiments import REGISTRY

    outside = {e.name: e.compute for e in REGISTRY.select(None) if not e.compute.startswith("verify.experiments.")}
    assert not outside, outside


@pytest.mark.parametrize("module, source", [
    ("verify.samplers.planted", "from verify.report.cache import atomic_write\n"),
    ("verify.samplers.planted", "def f():\n    from verify.analysis.metrics import sliced_w2\n"),
    ("verify.samplers.planted", "from ..experiments import metrics\n"),
    ("verify.samplers.planted", "from verify import experiments\n"),
    ("verify.samplers.planted", "from verify import fkc_sample\n"),
    ("verify.samplers.planted", "import verify.report.build as b\n"),
    ("verify.report.planted", "from verify.experiments import REGISTRY\n"),
    ("verify.report.planted", "from ..experiments import fkc_sweep\n"),
    ("verify.analysis.planted", "from verify.report.claims import Outcome\n"),
    ("verify.analysis.planted", "from verify.experiments.fkc_sweep import fkc_sweep\n"),
    ("theory.planted", "from verify.samplers.scores import exact_score\n"),
    ("theory.derivations.planted", "import verify\n"),
    ("closed_form.planted", "from theory import girsanov_kl_bound\n"),
    ("closed_form.planted", "import verify.samplers\n"),
    ("verify", "from verify.experiments import REGISTRY\n"),
    ("verify", "from .report import build\n"),
])
def test_the_checker_catches_a_planted_violation(module, source):
    assert door_violations(source, module, is_package=module == "verify"), (module, source)


@pytest.mark.parametrize("module, source", [
    ("verify.samplers.planted", "from verify.samplers.scores import exact_score\nfrom .noise import hash_normal\n"),
    ("verify.samplers.planted", "from closed_form import Gaussian\nfrom theory import two_point\n"),
    ("verify.experiments.planted", "from verify.samplers.smc import fkc_sample\nimport verify\n"),
    ("verify.experiments.planted", "from ..samplers import scores\nfrom ..analysis.metrics import sliced_w2\n"),
    ("verify.experiments.planted", "from verify.report.registry import grid\nfrom ..report import claims\n"),
    ("verify.analysis.planted", "from verify.samplers.smc import fkc_sample\nfrom .stats import welch\n"),
    ("theory.planted", "from closed_form.errors import CatcompError\n"),
])
def test_the_checker_passes_the_open_doors(module, source):
    assert door_violations(source, module) == []


def test_no_report_module_names_an_experiment():
    """The report layer renders and decides; which experiments exist is verify.experiments' business. No string in
    verify/report/ is an experiment's name, and no module there imports verify.experiments (the doors above)."""
    from verify.experiments import REGISTRY

    names = set(REGISTRY.names())
    for path in sorted((ROOT / "verify" / "report").glob("*.py")):
        strings = {node.value for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        assert not strings & names, (path.name, strings & names)
        assert not (ROOT / "verify" / "report" / "catalog.py").exists()


def test_every_experiment_module_registers_the_experiment_it_is_named_after():
    from verify.experiments import MODULES, REGISTRY

    assert [m.__name__.rpartition(".")[2] for m in MODULES] == list(REGISTRY.names())
    assert {p.stem for p in (ROOT / "verify" / "experiments").glob("*.py")} - {"__init__"} == set(REGISTRY.names())
