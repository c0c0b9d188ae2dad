r"""The paper's headline table with learned scores: naive composition and FKC × K with an ε-predictor network trained
on ``n`` exact draws per source, against the same samplers with exact ("analytical") scores.

One call is one *cell* ``(setting, n)``. Each of its ``n_runs`` independent runs ``r``

1. retrains the conditional ε-predictor (:func:`verify.samplers.networks.train_network`: a new pool of ``n`` exact
   draws per condition ``a1, a2, base`` and a new initialization, both from the run's key), or, for
   ``n = ANALYTICAL``, takes the exact scores (:func:`verify.samplers.scores.source_scores`);
2. samples ``n_swarms`` outputs of naive composition (``K = 1``, :func:`verify.samplers.naive.naive_sde_sample`) and
   of FKC with ``K`` particles per swarm for every other ``K`` of ``ks``
   (:func:`verify.samplers.smc.fkc_sample`), ``n_steps`` Euler–Maruyama steps from ``N(0, I)``, the setting's
   weights ``(1, 1, −1)``;
3. measures each output against one fresh exact target sample ``Y_r`` of ``n_swarms`` draws: sliced W2
   (:func:`verify.experiments.metrics.sliced_w2`, ``n_proj`` directions) and unbiased RBF MMD² with the median
   heuristic (:func:`verify.experiments.metrics.mmd2_unbiased`);
4. measures the *noise floor*: the same two metrics between ``Y_r`` and a second, independent exact target sample of
   the same size (a row with ``K = FLOOR_K``). Its expectation is what a perfect sampler scores, so the floor carries
   a mean and a standard error over runs like every other row.

Keys: run ``r`` uses ``fold_in(key(seed), r)`` split into ``(train, reference, floor, projections, sampling)``;
``K``'s sampler key is ``fold_in(sampling, K)``, and every metric of the run uses the same projection key. A run's
rows are therefore reproducible one by one (:func:`run_keys`), and the same arguments give the same frame.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import numpy as np
import pandas as pd

from closed_form import VPSchedule, paper_setting
from closed_form.errors import CatcompError

#: The ``n`` of a cell sampled with exact scores instead of a network (the paper's "analytical" column).
ANALYTICAL = 0
#: The ``K`` of the noise-floor rows (two independent exact target samples, no sampler).
FLOOR_K = 0
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


def _count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise CatcompError(f"{name} must be an integer ≥ {minimum}, got {value!r}.")
    return int(value)


def check_training_size(n) -> int:
    """``n`` as an integer: a pool size ``≥ 1``, or :data:`ANALYTICAL` (``0``, also spelt ``"analytical"``)."""
    if isinstance(n, str):
        if n != "analytical":
            raise CatcompError(f"n must be a positive integer or 'analytical' (exact scores), got {n!r}.")
        return ANALYTICAL
    return _count(n, "n (0 or 'analytical' for exact scores)", 0)


def check_particle_counts(ks) -> tuple[int, ...]:
    """``ks`` as a tuple of distinct positive integers, in the given order (``K = 1`` is naive composition)."""
    try:
        ks = tuple(ks)
    except TypeError:
        raise CatcompError(f"ks must be a sequence of particle counts, got {ks!r}.") from None
    if not ks:
        raise CatcompError("ks must hold at least one particle count K ≥ 1 (K = 1 is naive composition).")
    ks = tuple(_count(k, "each particle count K", 1) for k in ks)
    if len(set(ks)) != len(ks):
        raise CatcompError(f"the particle counts must be distinct, got {list(ks)}.")
    return ks


def final_loss(losses) -> float:
    """Mean of the last :data:`FINAL_LOSS_FRACTION` of the per-step training losses (at least one step)."""
    losses = np.asarray(losses, dtype=np.float64)
    tail = max(1, int(math.ceil(FINAL_LOSS_FRACTION * losses.shape[0])))
    return float(losses[-tail:].mean())


def learned_sweep(setting: str, n=ANALYTICAL, ks=(1, 4, 16, 64, 256), n_runs: int = 30, n_swarms: int = 5000,
                  n_steps: int = 500, n_proj: int = 2000, config="paper", seed: int = 0,
                  progress: bool = False) -> pd.DataFrame:
    r"""Sliced W2 and MMD² of naive composition and FKC × K with scores learned from ``n`` draws per source (module
    doc), ``n_runs`` runs, each retraining the network; the defaults are the paper's sizes.

    Parameters
    ----------
    setting : str
        A paper setting (:data:`closed_form.SETTING_NAMES`).
    n : int or ``"analytical"``
        Pool size per source for training; :data:`ANALYTICAL` (``0``) or ``"analytical"`` uses the exact scores.
    ks : sequence of int
        Particle counts; ``K = 1`` is naive composition.
    n_runs : int
        Independent runs (retrainings) ``≥ 2``, so every row has a standard error over runs.
    n_swarms : int
        Outputs per sampler and draws per exact target sample, ``≥ 2`` (MMD² needs two on each side).
    n_steps, n_proj : int
        Euler–Maruyama steps; random directions of sliced W2.
    config : :class:`~verify.samplers.networks.NetworkConfig` or str
        The network, or a name of :data:`verify.experiments.score_error_maps.NAMED_CONFIGS`; unused for exact scores.
    seed : int
    progress : bool
        Show the training's progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per (run, ``K``) and one floor row per run, columns ``setting``, ``n`` (``0`` = analytical),
        ``K`` (:data:`FLOOR_K` = floor), ``run``, ``sw2``, ``mmd2``, ``train_loss`` (the run's :func:`final_loss`;
        NaN for exact scores and floor rows), ``n_swarms``, ``n_steps``.

    Raises
    ------
    CatcompError
        For an unknown setting or configuration name, ``n`` neither a non-negative integer nor ``"analytical"``,
        empty, non-positive or repeated ``ks``, ``n_runs < 2``, ``n_swarms < 2``, or non-positive ``n_steps`` /
        ``n_proj`` (the message says what is valid).
    """
    from verify.experiments.metrics import mmd2_unbiased, sliced_w2
    from verify.experiments.score_error_maps import network_config
    from verify.samplers.naive import naive_sde_sample
    from verify.samplers.networks import check_config, network_scores, train_network
    from verify.samplers.scores import source_scores
    from verify.samplers.smc import fkc_sample

    s = paper_setting(setting)
    n = check_training_size(n)
    ks = check_particle_counts(ks)
    n_runs = _count(n_runs, "n_runs (a standard error needs two runs)", 2)
    n_swarms = _count(n_swarms, "n_swarms (MMD² needs two draws per side)", 2)
    n_steps = _count(n_steps, "n_steps", 1)
    n_proj = _count(n_proj, "n_proj", 1)
    config = network_config(config)
    if n != ANALYTICAL:
        check_config(config, len(s.sources))  # before any work, not at the first training
    schedule = VPSchedule()
    comp = s.composition
    exact = source_scores(comp, schedule)

    rows = []
    for r in range(n_runs):
        keys = run_keys(seed, r)
        if n == ANALYTICAL:
            scores, loss = exact, np.nan
        else:
            result = train_network(keys.train, s.sources, schedule, n, config, progress=progress)
            scores, loss = network_scores(result, schedule), final_loss(result.losses)
        ref = comp.sample_target(keys.reference, n_swarms).samples

        def measured(x):
            return {"sw2": sliced_w2(x, ref, keys.projections, n_proj), "mmd2": mmd2_unbiased(x, ref)}

        for k in ks:
            sample_key = jax.random.fold_in(keys.sampling, k)
            if k == 1:
                out = naive_sde_sample(sample_key, scores, s.weights, schedule, n_swarms, n_steps=n_steps)
            else:
                out = fkc_sample(sample_key, scores, s.weights, schedule, n_swarms, k, n_steps=n_steps).samples
            rows.append({"K": k, "run": r, **measured(out), "train_loss": loss})
        floor = comp.sample_target(keys.floor, n_swarms).samples
        rows.append({"K": FLOOR_K, "run": r, **measured(floor), "train_loss": np.nan})
    frame = pd.DataFrame(rows)
    frame.insert(0, "n", n)
    frame.insert(0, "setting", setting)
    return frame.assign(n_swarms=n_swarms, n_steps=n_steps)


__all__ = ["ANALYTICAL", "FINAL_LOSS_FRACTION", "FLOOR_K", "RunKeys", "check_particle_counts", "check_training_size",
           "final_loss", "learned_sweep", "run_keys"]
