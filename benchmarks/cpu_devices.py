"""Emulated CPU devices for the benchmark scripts: one per core, so a script's swarms shard over both cores.

XLA reads ``--xla_force_host_platform_device_count`` when JAX starts its CPU backend, so call
:func:`emulate_cpu_devices` before the first ``import jax`` of the process.
"""

from __future__ import annotations

import os


def emulate_cpu_devices(n: int) -> None:
    """Ask XLA for ``n`` host devices (nothing for ``n ≤ 1`` or when ``XLA_FLAGS`` already sets a count)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if n > 1 and "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()
