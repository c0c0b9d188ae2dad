"""The experiment registry: what ``python -m verify`` runs, at which sizes, and what it makes of the results.

An :class:`Experiment` is a compute function (given as the function or as its import path
``"package.module:function"``; worker processes and Dask workers import it by that path), the list of *cells*
(configurations, one call each) at each size — ``quick``, ``default`` and ``paper`` — and what the report builds
from the concatenated result: tables, figures and checks of claims. Each module of :mod:`verify.experiments` holds
one experiment and its registration; :data:`verify.experiments.REGISTRY` lists them in order.

The compute function is called as ``function(**config, seed=cell_seed)`` (the keyword is ``seed_argument``, ``None``
for deterministic functions; ``seed_kind="jax_key"`` passes ``jax.random.key(cell_seed)``) and returns a tidy
:class:`pandas.DataFrame`. The report adds the configuration's keys as columns where the frame lacks them, so cells
concatenate into one table.

A cell's ``setting`` (a paper setting's name, or a :meth:`closed_form.Setting.to_spec` mapping) reaches the compute
function as a :class:`closed_form.Setting`. Run on other settings (``python -m verify --settings FILE``), an
experiment whose cells take a ``setting`` runs its cells once per setting it applies to (``applies_to``); one whose
cells take none is not applicable there.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import pandas as pd

from verify.report.cache import canonical_json
from verify.report.claims import Check
from verify.report.figures import FigureSpec
from verify.report.tables import TableSpec


#: The report sizes: ``quick`` (what the tests run), ``default``, and ``paper`` (the authors' sizes where an experiment
#: defines them; its default cells otherwise).
SIZES = ("quick", "default", "paper")


class RegistryError(ValueError):
    """An invalid registration or an unknown experiment name."""


def grid(**axes) -> tuple[dict, ...]:
    """The cartesian product of named axes as cell configurations: ``grid(setting=("A", "B"), K=(1, 4))`` gives four
    dicts, in order (last axis fastest)."""
    names = list(axes)
    return tuple(dict(zip(names, values)) for values in itertools.product(*(tuple(axes[n]) for n in names)))


def setting_label(value) -> str:
    """The name of a cell's ``setting`` value without building it: a paper name itself, ``spec["paper"]`` or
    ``spec["name"]``."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return str(value.get("paper", value.get("name", "?")))
    return str(getattr(value, "name", value))


def gaussian_only(setting) -> str | None:
    """``applies_to`` of an experiment that needs Gaussian sources (closed-form laws): the reason it does not apply
    to ``setting``, or ``None``."""
    if setting.is_gaussian:
        return None
    return f"needs Gaussian sources (closed-form laws); {setting.name} has a Gaussian-mixture source"


def resolve(path: str):
    """The object named by ``"package.module:attribute"``."""
    module, _, attribute = path.partition(":")
    if not module or not attribute:
        raise RegistryError(f"compute path {path!r} must look like 'package.module:function'.")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Experiment:
    """One registered experiment (see the module docstring).

    Parameters
    ----------
    name : str
        Identifier: the CSV is ``<name>.csv``; ``--only NAME`` selects it.
    title : str
        One line saying what it measures.
    compute : str or callable
        The compute function, or its path ``"package.module:function"`` (a function is stored as its path).
    default, quick : tuple of dict
        Cell configurations at the default and the quick size (plain JSON data). ``quick`` may be empty for an
        experiment too slow for the quick run; it is then reported as skipped there.
    applies_to : callable, optional
        ``setting -> reason or None``: why the experiment does not apply to a :class:`closed_form.Setting` (e.g.
        :func:`gaussian_only`), ``None`` where it does. Used when the report runs on other settings.
    seed_argument : str or None
        Keyword through which each cell receives its own seed.
    seed_kind : {"int", "jax_key"}
        Pass the seed as an integer, or as ``jax.random.key(seed)`` (for functions taking a ``key``).
    tables, figures, checks
        What the report builds from the saved CSV.
    derive : callable, optional
        ``frame -> frame`` applied to the concatenated cells before the CSV is written, for columns computed from
        others (a bound's tightness ``measured / bound``, say), so that tables still read everything from the CSV.
    allow_nan : tuple of str
        Result columns in which NaN is a meant value (a table must then declare what to show for it); NaN anywhere
        else fails the cell.
    paper : tuple of dict
        Cell configurations at the authors' sizes, run by ``--size paper``; experiments without them run their
        default cells there.
    requires : tuple of str
        Modules that must be importable for the experiment to run. When one is missing the experiment is listed as
        awaiting it and its checks count as not applicable, which keeps a registration valid while its code lands.
    """

    name: str
    title: str
    compute: str | Callable
    default: tuple[dict, ...]
    quick: tuple[dict, ...]
    seed_argument: str | None = "seed"
    seed_kind: str = "int"
    tables: tuple[TableSpec, ...] = ()
    figures: tuple[FigureSpec, ...] = ()
    checks: tuple[Check, ...] = ()
    derive: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    allow_nan: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    paper: tuple[dict, ...] = ()
    applies_to: Callable | None = None

    def __post_init__(self):
        if callable(self.compute):
            object.__setattr__(self, "compute", f"{self.compute.__module__}:{self.compute.__qualname__}")
        if not self.name.isidentifier():
            raise RegistryError(f"experiment name {self.name!r} must be an identifier (letters, digits, '_').")
        if self.seed_kind not in ("int", "jax_key"):
            raise RegistryError(f"seed_kind of {self.name!r} is {self.seed_kind!r}; expected 'int' or 'jax_key'.")
        if ":" not in self.compute:
            raise RegistryError(f"compute of {self.name!r} is {self.compute!r}; expected 'package.module:function'.")
        if not self.default:
            raise RegistryError(f"experiment {self.name!r} has no default cells; give at least one configuration.")
        for label, cells in (("default", self.default), ("quick", self.quick), ("paper", self.paper)):
            for cell in cells:
                if not isinstance(cell, Mapping):
                    raise RegistryError(f"experiment {self.name!r}: each cell must be a dict, got {cell!r}.")
                try:
                    canonical_json(dict(cell))
                except (TypeError, ValueError) as err:
                    raise RegistryError(f"experiment {self.name!r}: cell {cell!r} is not plain JSON data: {err}") from err
                if self.seed_argument and self.seed_argument in cell:
                    raise RegistryError(f"experiment {self.name!r}: cell {cell!r} sets {self.seed_argument!r}, which "
                                        "the report sets per cell.")

    def cells(self, size: str = "default", settings=None) -> tuple[dict, ...]:
        """The configurations to run at ``size`` (one of :data:`SIZES`; ``"paper"`` falls back to the default cells
        of an experiment that defines no paper-size ones).

        With ``settings`` (a sequence of :class:`closed_form.Setting`), each configuration's other keys run once per
        setting the experiment applies to, in place of its own settings; an experiment whose cells take no
        ``setting`` has no cells then (:meth:`not_applicable` says why)."""
        if size not in SIZES:
            raise RegistryError(f"size must be one of {', '.join(SIZES)}, got {size!r}.")
        chosen = {"quick": self.quick, "default": self.default, "paper": self.paper or self.default}[size]
        if settings is None:
            return tuple(dict(c) for c in chosen)
        if not any("setting" in c for c in chosen):
            return ()
        # Only the cells that take a setting are re-gridded; cells without one (an experiment's own fixed cases
        # beside its per-setting ones) do not run on a user's settings.
        rest = list({canonical_json({k: v for k, v in c.items() if k != "setting"}): {k: v for k, v in c.items()
                                                                                       if k != "setting"}
                     for c in chosen if "setting" in c}.values())
        applicable = [s for s in settings if self.reason_not_applicable(s) is None]
        return tuple({"setting": s.to_spec(), **r} for s in applicable for r in rest)

    def reason_not_applicable(self, setting) -> str | None:
        """Why this experiment does not apply to ``setting`` (``None`` if it does)."""
        return None if self.applies_to is None else self.applies_to(setting)

    def not_applicable(self, size: str, settings) -> str:
        """Why :meth:`cells` gave no cells for ``settings`` at ``size``: the reasons, one per setting."""
        chosen = {"quick": self.quick, "default": self.default, "paper": self.paper or self.default}[size]
        if not chosen:
            return f"it has no cells at --size {size}"
        if not any("setting" in c for c in chosen):
            return "it does not take a setting (it runs on its own fixed compositions)"
        reasons = [f"{s.name}: {why}" for s in settings if (why := self.reason_not_applicable(s)) is not None]
        return "; ".join(reasons) or "no setting given"

    def missing_requirements(self) -> tuple[str, ...]:
        """The modules of ``requires`` (and the compute function's module) that cannot be imported here."""
        modules = (*self.requires, self.compute.partition(":")[0])
        missing = []
        for module in modules:
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:  # a parent package is absent
                found = False
            if not found:
                missing.append(module)
        return tuple(dict.fromkeys(missing))

    @property
    def claims(self) -> tuple[str, ...]:
        """Ids of the claims this experiment's checks decide."""
        return tuple(dict.fromkeys(c.claim for c in self.checks))


class Registry:
    """An ordered collection of experiments, keyed by name."""

    def __init__(self, experiments: Iterable[Experiment] = ()):
        self._experiments: dict[str, Experiment] = {}
        for experiment in experiments:
            self.register(experiment)

    def register(self, experiment: Experiment) -> Experiment:
        """Add ``experiment``; its name must be new. Returns it, so a registration can be a module-level line."""
        if not isinstance(experiment, Experiment):
            raise RegistryError(f"register expects an Experiment, got {type(experiment).__name__}.")
        if experiment.name in self._experiments:
            raise RegistryError(f"an experiment named {experiment.name!r} is already registered.")
        stems = {t.name for e in self._experiments.values() for t in e.tables}
        figures = {f.name for e in self._experiments.values() for f in e.figures}
        clash = {t.name for t in experiment.tables} & stems | {f.name for f in experiment.figures} & figures
        if clash:
            raise RegistryError(f"experiment {experiment.name!r} reuses table/figure names {sorted(clash)}.")
        self._experiments[experiment.name] = experiment
        return experiment

    def __iter__(self):
        return iter(self._experiments.values())

    def __len__(self):
        return len(self._experiments)

    def __contains__(self, name):
        return name in self._experiments

    def __getitem__(self, name: str) -> Experiment:
        try:
            return self._experiments[name]
        except KeyError:
            raise RegistryError(f"no experiment named {name!r}; registered: {', '.join(self._experiments)}.") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._experiments)

    def select(self, names: Iterable[str] | None) -> list[Experiment]:
        """The experiments named (in registry order), or all of them when ``names`` is ``None``."""
        if names is None:
            return list(self)
        wanted = list(dict.fromkeys(names))
        for name in wanted:
            self[name]  # raises with the valid names
        return [e for e in self if e.name in wanted]
