"""Atomic file writes and canonical JSON: the file plumbing shared by the trained-parameter cache
(:mod:`verify.samplers.network_cache`) and the report (:mod:`verify.report.cache` and every file the report writes).

:func:`atomic_write` puts the bytes in a temporary file in the destination folder, flushes them to disk, and only then
renames it over the destination (``os.replace``, atomic on POSIX): a run that is killed mid-write leaves either the
old file or the new one, never half of one, and concurrent writers of the same file each leave a whole one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write(path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, then rename).

    Parent folders are created. On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def canonical_json(value: Any) -> str:
    """A deterministic JSON text of ``value`` (sorted keys, no whitespace): the input of every hash here.

    Raises
    ------
    TypeError
        For values JSON cannot represent; a cell configuration must be plain data (numbers, strings, lists, dicts).
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


__all__ = ["atomic_write", "canonical_json"]
