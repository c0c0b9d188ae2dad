r"""A cache of trained network parameters on disk, so re-running a computation does not retrain its networks.

Off by default: :func:`verify.samplers.networks.train_network` is a pure function and trains every time. Switched on
for a block of code by :func:`network_cache` (``with network_cache("results/cache/networks"): ...``), or for a whole
process and the processes it starts by the environment variable ``CATCOMP_NETWORK_CACHE`` (a folder); the
context manager takes precedence, and ``network_cache(None)`` switches the cache off inside its block whatever the
environment says. The report (``python -m verify``) uses ``<out>/cache/networks``.

One entry is one ``.npz`` file, ``<folder>/<hash>.npz``, holding the parameter arrays, the step losses and, as the
array ``__meta__``, the canonical JSON :func:`entry_description` of everything that determines them:

* the key's data (``jax.random.key_data``) and its PRNG implementation;
* each source's type and every array leaf (shape, dtype and a SHA-256 of its bytes);
* the schedule's type and fields, the pool size ``n`` and every field of the :class:`NetworkConfig`;
* a hash of the source of ``verify/samplers/networks.py``, this module and the whole ``closed_form`` package, so an
  edit of the training code, of the sources' sampling or of the schedules invalidates every entry;
* the versions of JAX, jaxlib and optax, the backend, the float64 flag and ``jax_threefry_partitionable``, on which
  the bits of a training run also depend.

The training chunk is not part of it: it does not change the result. The file name is the SHA-256 of that JSON; a
loaded entry is used only if its stored description equals the expected one and every array has the expected shape
and dtype, so a cached result is bit-identical to a fresh one. An unreadable or mismatched entry (a truncated file,
say) is ignored with a :class:`UserWarning`, retrained and overwritten. Entries are written atomically (temporary
file in the folder, flushed, then renamed), so concurrent workers training the same network each write a whole file
and a killed run leaves no half-written entry. Sources whose leaves are not numeric arrays cannot be described; for
them the cache is bypassed with a warning.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import hashlib
import importlib.util
import io
import os
import warnings
from pathlib import Path

import jax
import numpy as np

from verify.samplers.files import atomic_write, canonical_json

#: The environment variable naming the cache folder for a whole process (and the processes it starts).
ENV_VAR = "CATCOMP_NETWORK_CACHE"
#: Bumped when the entry layout changes, so old entries stop matching.
FORMAT = 1

_UNSET = object()
_ACTIVE = contextvars.ContextVar("catcomp_network_cache", default=_UNSET)


@contextlib.contextmanager
def network_cache(path):
    """Within the block, :func:`train_network` reads and writes trained parameters under ``path`` (a folder, created
    on the first write); ``path=None`` switches the cache off within the block."""
    token = _ACTIVE.set(None if path is None else Path(path))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def network_cache_dir() -> Path | None:
    """The active cache folder: the innermost :func:`network_cache`, else ``$CATCOMP_NETWORK_CACHE``, else ``None``."""
    active = _ACTIVE.get()
    if active is not _UNSET:
        return active
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else None


@functools.lru_cache(maxsize=1)
def training_code_hash() -> str:
    """SHA-256 (16 hex digits) of ``verify/samplers/networks.py``, this module and every ``.py`` file of
    ``closed_form``, each labelled by its name, in sorted order."""
    here = Path(__file__).parent
    files = [("networks.py", here / "networks.py"), ("network_cache.py", here / "network_cache.py")]
    root = Path(next(iter(importlib.util.find_spec("closed_form").submodule_search_locations)))
    files += [(f"closed_form/{p.relative_to(root).as_posix()}", p) for p in sorted(root.rglob("*.py"))]
    digest = hashlib.sha256()
    for label, file in files:
        digest.update(label.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _array_entry(leaf) -> dict | None:
    array = np.ascontiguousarray(np.asarray(leaf))
    if array.dtype.kind not in "biuf":
        return None
    return {"shape": list(array.shape), "dtype": array.dtype.str, "sha256": hashlib.sha256(array.tobytes()).hexdigest()}


def _qualname(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def entry_description(key, sources, schedule, n: int, config) -> dict | None:
    """What determines a training run's result (module doc), as plain JSON data; ``None`` when a source or the
    schedule cannot be described (non-array leaves, a schedule that is not a dataclass)."""
    source_entries = []
    for source in sources:
        leaves = [_array_entry(leaf) for leaf in jax.tree_util.tree_leaves(source)]
        if not leaves or any(leaf is None for leaf in leaves):
            return None
        source_entries.append({"type": _qualname(source), "leaves": leaves})
    if not dataclasses.is_dataclass(schedule):
        return None
    import jaxlib
    import optax

    return {
        "format": FORMAT,
        "key": {"impl": str(jax.random.key_impl(key)), "data": np.asarray(jax.random.key_data(key)).tolist()},
        "sources": source_entries,
        "schedule": {"type": _qualname(schedule), "fields": dataclasses.asdict(schedule)},
        "n": int(n),
        "config": dict(config._asdict()),
        "code": training_code_hash(),
        "versions": {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "optax": optax.__version__},
        "backend": jax.default_backend(),
        "x64": bool(jax.config.jax_enable_x64),
        "threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
    }


def entry_path(folder, description: dict) -> Path:
    """``<folder>/<SHA-256 of the canonical JSON of description>.npz``."""
    return Path(folder) / f"{hashlib.sha256(canonical_json(description).encode()).hexdigest()}.npz"


def load_entry(path: Path, description: dict, leaf_shapes, losses_shape) -> tuple[list, np.ndarray] | None:
    """The cached ``(parameter leaves, losses)`` at ``path``, or ``None`` when there is none. An entry that cannot be
    read, or whose description, number of leaves, shapes or dtypes differ from those expected, is ignored with a
    warning (the caller retrains and overwrites it)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = str(data["__meta__"])
            leaves = [data[f"leaf{i}"] for i in range(len(leaf_shapes))]
            losses = data["losses"]
            extra = set(data.files) - {"__meta__", "losses"} - {f"leaf{i}" for i in range(len(leaf_shapes))}
    except Exception as err:  # noqa: BLE001 - any unreadable entry means "retrain"
        warnings.warn(f"ignoring unreadable network cache entry {path} ({type(err).__name__}: {err}); retraining.",
                      stacklevel=3)
        return None
    problems = []
    if stored != canonical_json(description):
        problems.append("its description differs from this run's")
    if extra:
        problems.append(f"it has unexpected arrays {sorted(extra)}")
    for i, (leaf, shape) in enumerate(zip(leaves, leaf_shapes)):
        if leaf.shape != tuple(shape) or leaf.dtype != np.float64:
            problems.append(f"leaf{i} is {leaf.dtype}{list(leaf.shape)}, expected float64{list(shape)}")
    if losses.shape != tuple(losses_shape) or losses.dtype != np.float64:
        problems.append(f"losses are {losses.dtype}{list(losses.shape)}, expected float64{list(losses_shape)}")
    if problems:
        warnings.warn(f"ignoring network cache entry {path}: {'; '.join(problems)}; retraining.", stacklevel=3)
        return None
    return leaves, losses


def save_entry(path: Path, description: dict, leaves, losses) -> Path:
    """Write an entry atomically (:func:`verify.samplers.files.atomic_write`)."""
    buffer = io.BytesIO()
    arrays = {f"leaf{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    np.savez(buffer, __meta__=np.asarray(canonical_json(description)), losses=np.asarray(losses), **arrays)
    return atomic_write(path, buffer.getvalue())


__all__ = ["ENV_VAR", "entry_description", "entry_path", "load_entry", "network_cache", "network_cache_dir",
           "save_entry", "training_code_hash"]
