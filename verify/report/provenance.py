"""Where a result came from: package versions, the float64 flag, the git commit. Written into every JSON sidecar."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("catcomp", "numpy", "scipy", "jax", "jaxlib", "pandas", "matplotlib", "seaborn")


def package_versions(packages=PACKAGES) -> dict[str, str | None]:
    """Installed versions of ``packages`` (``None`` where one is not installed) and of Python."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def x64_enabled() -> bool:
    """Whether JAX computes in float64 in this process."""
    import jax

    return bool(jax.config.read("jax_enable_x64"))


def git_state(path=None) -> dict[str, str | bool | None]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout holding ``path`` (this package by
    default). ``None`` values when the code does not run from a git checkout or git is not installed."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}
