"""The report's cell cache, and the atomic writes every file of the report goes through.

:func:`atomic_write` and :func:`canonical_json` live in :mod:`verify.samplers.files` (the trained-parameter cache uses
them too) and are re-exported here: the bytes land in a temporary file in the destination folder, are flushed to
disk, and only then renamed over the destination, so a run killed mid-write leaves the old file or the new one.

A *cell* is one call of an experiment's compute function with one configuration. :class:`CellCache` stores each
finished cell's result under a key that hashes the experiment name, the configuration, the seed, the *code
version* (a hash of the source of every package a cell's result can depend on: ``closed_form``, ``theory``,
``verify.samplers`` and ``verify.analysis``) and the source of the experiment's own module, so an interrupted run
resumes without recomputing finished cells, any change to shared computing code invalidates every cached cell, and a
change to one experiment's module (its computation or its registration) recomputes that experiment alone.
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verify.samplers.files import atomic_write, canonical_json  # noqa: F401  (re-exported)

#: The shared packages a cell's result can depend on, hashed whole: a module added to any of them counts without a
#: list to update. Each experiment's own module is hashed into its cells' keys (:func:`module_version`).
#: ``verify.report`` (tables, figures, claims, this cache) is left out entirely, so editing how a table or a summary
#: is rendered recomputes no cell; so are ``verify/__init__.py`` (re-exports and the float64 switch, whose effect
#: each cell records) and ``verify/__main__.py``.
PACKAGES = ("closed_form", "theory", "verify.samplers", "verify.analysis")


def stable_hash(value: Any, length: int = 16) -> str:
    """The first ``length`` hex digits of the SHA-256 of :func:`canonical_json` of ``value``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:length]


def hashed_files(packages: tuple[str, ...] = PACKAGES) -> list[tuple[str, Path | None]]:
    """What :func:`code_version` hashes: ``(label, file)`` for every ``.py`` file under each of ``packages`` (dotted
    names; subpackages included), labelled by its path (``verify/samplers/smc.py``), in sorted order per package;
    ``(name + ":absent", None)`` for a package that is not importable."""
    import importlib.util

    out: list[tuple[str, Path | None]] = []
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            out.append((f"{name}:absent", None))
            continue
        root = Path(next(iter(spec.submodule_search_locations)))
        prefix = name.replace(".", "/")
        out.extend((f"{prefix}/{file.relative_to(root).as_posix()}", file) for file in sorted(root.rglob("*.py")))
    return out


def code_version(packages: tuple[str, ...] = PACKAGES) -> str:
    """A hash of :func:`hashed_files` of ``packages``: each file's label and content, in order.

    Hashing the source rather than asking git makes the version meaningful in an installed copy, and makes an
    uncommitted edit count as a new version.
    """
    digest = hashlib.sha256()
    for label, file in hashed_files(packages):
        digest.update(label.encode())
        if file is not None:
            digest.update(b"\0")
            digest.update(file.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:16]


def module_version(module: str) -> str:
    """A hash of one module's source file (``"absent"`` when it cannot be found)."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return "absent"
    return hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class CachedCell:
    """A finished cell: its result ``frame`` (a pandas DataFrame), compute time in seconds, and the worker's x64 flag."""

    frame: Any
    wall_time: float
    x64: bool


class CellCache:
    """Finished cells on disk, one pickle per cell: ``root/<experiment>/<key>.pkl``.

    Parameters
    ----------
    root : path
        The cache folder (the report uses ``<out>/cache``).
    version : str, optional
        The code version folded into every key; :func:`code_version` when omitted.
    """

    def __init__(self, root, version: str | None = None):
        self.root = Path(root)
        self.version = code_version() if version is None else version

    def key(self, experiment: str, config: dict, seed: int, module: str = "") -> str:
        """The cell's key: a hash of the experiment name, its configuration, its seed, the code version and
        ``module`` (the experiment module's :func:`module_version`)."""
        value = {"experiment": experiment, "config": config, "seed": seed, "code": self.version}
        if module:
            value["module"] = module
        return stable_hash(value)

    def path(self, experiment: str, key: str) -> Path:
        return self.root / experiment / f"{key}.pkl"

    def load(self, experiment: str, key: str) -> CachedCell | None:
        """The cached cell, or ``None`` when absent. An unreadable entry (written by an incompatible pandas, say)
        is reported with a warning and treated as absent, so the cell is recomputed rather than trusted."""
        path = self.path(experiment, key)
        if not path.exists():
            return None
        try:
            with open(path, "rb") as fh:
                cell = pickle.load(fh)
        except Exception as err:  # noqa: BLE001 - any unreadable entry means "recompute"
            warnings.warn(f"ignoring unreadable cache entry {path}: {err}", stacklevel=2)
            return None
        if not isinstance(cell, CachedCell):
            warnings.warn(f"ignoring cache entry {path}: it holds {type(cell).__name__}, not a CachedCell", stacklevel=2)
            return None
        return cell

    def store(self, experiment: str, key: str, cell: CachedCell) -> Path:
        """Write the cell atomically."""
        return atomic_write(self.path(experiment, key), pickle.dumps(cell, protocol=pickle.HIGHEST_PROTOCOL))
