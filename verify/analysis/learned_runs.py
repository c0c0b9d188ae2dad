r"""What the experiments with trained networks share: the keys of one run and the training loss a run reports.

A run ``r`` of a cell with seed ``s`` draws everything from ``fold_in(key(s), r)``, split into five keys
(:class:`RunKeys`): the network's training (pools, initialization, steps), the exact reference target sample, the
second exact target sample of the noise floor, the random directions of sliced W2, and the samplers (a sampler with
``K`` particles per swarm uses ``fold_in(sampling, K)``). A run's numbers are therefore reproducible one by one.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import numpy as np

#: Fraction of the last training steps whose mean loss is reported as the run's final training loss.
FINAL_LOSS_FRACTION = 0.1


class RunKeys(NamedTuple):
    """The keys of one run (module doc)."""

    train: jax.Array
    reference: jax.Array
    floor: jax.Array
    projections: jax.Array
    sampling: jax.Array


def run_keys(seed: int, run: int) -> RunKeys:
    """The keys of run ``run`` of a cell with seed ``seed``: ``split(fold_in(key(seed), run), 5)``."""
    return RunKeys(*jax.random.split(jax.random.fold_in(jax.random.key(seed), run), 5))


def final_loss(losses) -> float:
    """Mean of the last :data:`FINAL_LOSS_FRACTION` of the per-step training losses (at least one step)."""
    losses = np.asarray(losses, dtype=np.float64)
    tail = max(1, int(math.ceil(FINAL_LOSS_FRACTION * losses.shape[0])))
    return float(losses[-tail:].mean())


__all__ = ["FINAL_LOSS_FRACTION", "RunKeys", "final_loss", "run_keys"]
