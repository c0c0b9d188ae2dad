"""Sharding the swarm axis of a sampler's state over all available JAX devices.

Swarms are independent, so a sampler's arrays of shape ``(n_swarms, ...)`` split along their first axis with no
communication except at the very end. :func:`swarm_sharding` picks the largest number of devices that divides
``n_swarms`` (all of them when it divides evenly) and returns a :class:`jax.sharding.NamedSharding` over a one-axis
mesh named ``"swarms"``; with one device it returns ``None`` and the samplers skip the constraints. On CPU, emulated
host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``) run their shards on separate threads, which is
how one sampler call uses several cores.

Random draws stay the same whatever the device count: JAX's default threefry generator is *partitionable*
(``jax_threefry_partitionable``), so each device computes exactly its slice of the global array of draws.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "swarms"


def swarm_sharding(n_swarms: int, devices=None):
    """A sharding of the leading (swarm) axis over the most devices that divide ``n_swarms``; ``None`` for one."""
    devices = list(jax.devices() if devices is None else devices)
    m = max(k for k in range(1, len(devices) + 1) if n_swarms % k == 0)
    if m == 1:
        return None
    return NamedSharding(Mesh(np.asarray(devices[:m]), (AXIS,)), PartitionSpec(AXIS))


def constrain(x, sharding):
    """``x`` with its leading axis sharded by ``sharding`` (a no-op when ``sharding`` is ``None``)."""
    if sharding is None:
        return x
    return jax.lax.with_sharding_constraint(x, sharding)
