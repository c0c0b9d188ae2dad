r"""Exact error maps of learned scores: a trained network's score error per source and time, where it was trained and
where a composed sampler uses it.

For score functions ``ŝ_i`` (a trained network's, :mod:`verify.samplers.networks`, or any others) and a composition
with closed-form laws, the *error map* is, for each source ``i``, time ``t`` and law ``L_t``,

.. math:: e_i(t; L) = E_{x∼L_t}\lVert ŝ_i(x, t) − s_i(x, t)\rVert^2,\qquad s_i = ∇\log q^i_t \text{ (exact)},

under three laws: the source's own marginal ``q^i_t`` (``law = "train"``, what training sees), the diffused target
``Q_t`` (``"target"``) and the geometric path ``π_t ∝ Π_i (q^i_t)^{w_i}`` (``"path"``), the last two where a
composed sampler evaluates the score. Each is a Monte Carlo mean over ``n_mc`` exact draws of ``L_t`` with standard
error ``std/√n_mc``; the exact score is :func:`verify.samplers.exact_score`.

The integrated *DSM excess* under ``L`` is the training loss's own weighting of the same error,

.. math:: ε_i^2(L) = \frac{1}{T − t_{min}}\int_{t_{min}}^{T} σ_t^2\, e_i(t; L)\,dt,

which for ``L = q^i`` is exactly the excess of the ε-prediction loss over its minimum for condition ``i`` with
``t ∼ U[t_min, T]`` (``paper_notes.md``, "Learned score networks"). The integral is Gauss–Legendre in ``u = √t``
(``dt = 2u du``), which removes the ``√t`` behaviour of ``σ_t`` near 0; the map's times are the rule's nodes.
Draws at different nodes are independent, so the excess has standard error
``(T − t_min)^{-1} (Σ_j (w_j σ_{t_j}^2 se_j)^2)^{1/2}`` (the quadrature error is not in it: compare ``n_nodes``
with ``2·n_nodes``). The ratio sampling side / training side, ``ε_i^2(Q)/ε_i^2(q^i)`` and ``ε_i^2(π)/ε_i^2(q^i)``,
has the delta-method standard error ``r (se_a²/a² + se_b²/b²)^{1/2}`` (independent draws); it is ``∞`` where only
the training-side excess is 0 and NaN (undefined, ``0/0``) where both are, as for exact scores.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from closed_form.errors import CatcompError, ShapeMismatchError
from closed_form.score_matching import gauss_legendre
from verify.samplers.networks import T_MIN, NetworkConfig
from verify.samplers.scores import exact_score

#: The laws of the error map, in order: the source's marginal, the diffused target, the geometric path.
LAWS = ("train", "target", "path")
#: Source labels of the paper's settings (``a1``, ``a2``, ``base``).
PAPER_SOURCE_NAMES = ("a1", "a2", "base")


def sqrt_time_nodes(t_min: float, t_max: float, n_nodes: int):
    r"""Nodes ``t_j`` and weights ``W_j`` with ``Σ_j W_j f(t_j) ≈ ∫_{t_min}^{t_max} f(t) dt``: the Gauss–Legendre rule in
    ``u = √t`` on ``[√t_min, √t_max]``, ``W_j = 2 u_j w_j``."""
    if not (math.isfinite(t_min) and math.isfinite(t_max) and 0.0 <= t_min < t_max):
        raise CatcompError(f"the time range must satisfy 0 ≤ t_min < t_max (finite), got [{t_min!r}, {t_max!r}].")
    u, w = gauss_legendre(math.sqrt(t_min), math.sqrt(t_max), n_nodes)
    return u**2, 2.0 * u * w


def _laws_at(composition, schedule, t):
    """``{law: (distribution or list of per-source distributions)}`` at time ``t``."""
    return {
        "train": composition.noised_sources(schedule, t),
        "target": composition.noised_target(schedule, t),
        "path": composition.path_composition(schedule, t).target,
    }


def score_error_map(scores, composition, schedule, key, *, n_mc: int = 4000, n_nodes: int = 16,
                    t_min: float = T_MIN, source_names=None) -> pd.DataFrame:
    r"""The error map, DSM excesses and ratios (module doc) of ``scores`` against ``composition``'s exact scores.

    Parameters
    ----------
    scores : sequence of score functions ``ŝ_i(x, t)``, one per source of ``composition``
        Anything the samplers take (trained networks' :func:`verify.samplers.networks.network_scores`, exact scores,
        plain functions); called with concrete ``t``.
    composition : closed_form.Composition
        Its target and geometric path must have closed forms (the Gaussian settings; mixtures with non-negative
        integer weights).
    schedule : VPSchedule or CosineSchedule
    key : jax.random key
    n_mc : int
        Exact draws per (law, time); the same draws of ``Q_t`` and ``π_t`` serve every source.
    n_nodes : int
        Gauss–Legendre nodes in ``√t`` on ``[t_min, T]``.
    t_min : float
        Lower end of the time integral (the training's ``t_min``).
    source_names : sequence of str, optional
        Labels of the sources (default ``"0"``, ``"1"``, …).

    Returns
    -------
    pandas.DataFrame
        Columns ``quantity`` (``"error"`` per time, ``"dsm_excess"``, ``"ratio"``), ``source``, ``t`` (NaN for the
        integrated rows), ``law`` (for ratios: the sampling-side law over ``"train"``), ``mean``, ``se``, ``n_mc``.

    Raises
    ------
    ShapeMismatchError
        When the number of scores differs from the number of sources, or a score's output has the wrong shape.
    CatcompError
        For non-positive ``n_mc`` / ``n_nodes`` or an invalid time range; :class:`NoClosedFormError` (from
        :mod:`closed_form`) when the target or path has no closed form.
    """
    scores = tuple(scores)
    sources = tuple(composition.sources)
    if len(scores) != len(sources):
        raise ShapeMismatchError(f"{len(scores)} score functions for {len(sources)} sources; pass one per source.")
    if isinstance(n_mc, bool) or int(n_mc) != n_mc or n_mc < 2:
        raise CatcompError(f"n_mc must be an integer ≥ 2 (a standard error needs two draws), got {n_mc!r}.")
    names = tuple(str(i) for i in range(len(sources))) if source_names is None else tuple(source_names)
    if len(names) != len(sources):
        raise ShapeMismatchError(f"{len(names)} source names for {len(sources)} sources.")
    nodes, qweights = sqrt_time_nodes(float(t_min), float(schedule.T), n_nodes)
    exact = tuple(exact_score(s, schedule) for s in sources)
    n_mc = int(n_mc)

    rows = []
    node_keys = _node_keys(key, len(nodes), len(sources) + 2)
    for j, (t, keys) in enumerate(zip(nodes, node_keys)):
        laws = _laws_at(composition, schedule, float(t))
        shared = {"target": laws["target"].sample(keys[-2], n_mc), "path": laws["path"].sample(keys[-1], n_mc)}
        t_arr = jnp.asarray(t, jnp.float64)
        for i, (s_hat, s_true, name) in enumerate(zip(scores, exact, names)):
            draws = {"train": laws["train"][i].sample(keys[i], n_mc), **shared}
            for law in LAWS:
                x = draws[law]
                out = jnp.asarray(s_hat(x, t_arr))
                if out.shape != x.shape:
                    raise ShapeMismatchError(f"score {i} returned shape {out.shape} for points of shape {x.shape}; "
                                             "a score function must return the shape of x.")
                sq = np.asarray(_squared_error(out, s_true(x, t_arr)))
                rows.append({"quantity": "error", "source": name, "t": float(t), "node": j, "law": law,
                             "mean": float(sq.mean()), "se": float(sq.std(ddof=1) / math.sqrt(n_mc)), "n_mc": n_mc})
    frame = pd.DataFrame(rows)
    return pd.concat([frame.drop(columns="node"), _integrated(frame, schedule, nodes, qweights, float(t_min))],
                     ignore_index=True)


def _node_keys(key, n_nodes: int, n_streams: int) -> list:
    """``split(split(key, n_nodes)[j], n_streams)`` for every node ``j``, as a list (nodes) of lists (streams) of
    keys: the splits in one compiled program, the keys taken apart in NumPy and wrapped again (which compiles
    nothing) instead of eager splits and slices."""
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    data = np.asarray(_node_key_data(key, n_nodes, n_streams))
    if typed:
        impl = jax.random.key_impl(key)
        return [[jax.random.wrap_key_data(data[j, i], impl=impl) for i in range(n_streams)] for j in range(n_nodes)]
    return [[jnp.asarray(data[j, i], dtype=data.dtype) for i in range(n_streams)] for j in range(n_nodes)]


@partial(jax.jit, static_argnums=(1, 2))
def _node_key_data(key, n_nodes, n_streams):
    keys = jax.vmap(lambda k: jax.random.split(k, n_streams))(jax.random.split(key, n_nodes))
    return jax.random.key_data(keys) if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) else keys


@jax.jit
def _squared_error(out, ref):
    """``‖out − ref‖²`` over the last axis."""
    return jnp.sum((out - ref) ** 2, axis=-1)


@partial(jax.jit, static_argnums=0)
def _sigma2(schedule, t):
    return schedule.sigma2(t)


def excess_ratio(a: float, b: float, se_a: float, se_b: float) -> tuple[float, float, str]:
    r"""``(a/b, se, status)`` for a sampling-side excess ``a ± se_a`` over a training-side one ``b ± se_b``, measured
    independently: the delta-method standard error ``r (se_a²/a² + se_b²/b²)^{1/2}`` (``se_a/b`` when ``a = 0``).
    ``status`` is ``"finite"``, ``"infinite"`` (``a/0`` with ``a > 0``, or ``a = ∞``; standard error NaN) or
    ``"undefined (0/0)"`` (both 0, as for exact scores; ratio and standard error NaN)."""
    if b == 0:
        return (math.nan, math.nan, "undefined (0/0)") if a == 0 else (math.inf, math.nan, "infinite")
    if not math.isfinite(a):
        return math.inf, math.nan, "infinite"
    r = a / b
    return r, (r * math.sqrt((se_a / a) ** 2 + (se_b / b) ** 2) if a > 0 else se_a / b), "finite"


def _integrated(frame: pd.DataFrame, schedule, nodes, qweights, t_min: float) -> pd.DataFrame:
    """The DSM excess rows (module doc) and the sampling-side / training-side ratio rows of an error map."""
    length = float(schedule.T) - t_min
    lam = np.asarray(_sigma2(schedule, jnp.asarray(nodes, dtype=jnp.float64)))  # σ_t², the loss's weighting
    rows, excess = [], {}
    for (name, law), g in frame.groupby(["source", "law"], sort=False):
        g = g.sort_values("node")
        c = qweights * lam / length
        mean, se = float(c @ g["mean"].to_numpy()), float(np.sqrt(np.sum((c * g["se"].to_numpy()) ** 2)))
        excess[name, law] = (mean, se)
        rows.append({"quantity": "dsm_excess", "source": name, "t": np.nan, "law": law, "mean": mean, "se": se,
                     "n_mc": int(g["n_mc"].iloc[0])})
    for name in frame["source"].unique():
        b, se_b = excess[name, "train"]
        for law in ("target", "path"):
            a, se_a = excess[name, law]
            r, se, _ = excess_ratio(a, b, se_a, se_b)
            rows.append({"quantity": "ratio", "source": name, "t": np.nan, "law": law, "mean": r, "se": se,
                         "n_mc": int(frame["n_mc"].iloc[0])})
    return pd.DataFrame(rows)


#: The named network configurations :func:`score_error_maps` accepts (plain strings keep report cells JSON data).
NAMED_CONFIGS = ("default", "small", "paper")


def network_config(config, per_condition: bool = False) -> NetworkConfig:
    """``config`` itself if a :class:`NetworkConfig`, else the named one of :data:`NAMED_CONFIGS` with
    ``per_condition``; raises :class:`CatcompError` for another name."""
    if isinstance(config, str):
        if config not in NAMED_CONFIGS:
            raise CatcompError(f"unknown network configuration {config!r}; valid: {', '.join(NAMED_CONFIGS)} or a "
                               "NetworkConfig.")
        return getattr(NetworkConfig, config)(per_condition=per_condition)
    return config


def learned_error_maps(setting, sizes, seed: int, config="default", per_condition: bool = False, n_mc: int = 2000,
                       n_nodes: int = 12, schedule=None, progress: bool = False) -> pd.DataFrame:
    r"""Train the ε-predictor on pools of ``n ∈ sizes`` exact draws per source of a Gaussian ``setting`` and return
    each network's :func:`score_error_map`, with columns ``setting`` and ``n`` in front; sources are named by the
    setting's labels.

    One network per size (``config``: a :class:`NetworkConfig` or one of :data:`NAMED_CONFIGS`, its
    ``per_condition`` set from ``per_condition`` when named), trained from ``key(seed)`` folded with ``n`` (so a
    network is the same, and the parameter cache of :func:`verify.samplers.networks.train_network` serves it, for the
    same seed, setting, size and configuration); the map's draws use an independent key split from the same seed.

    Raises
    ------
    NotGaussianSettingError
        For a setting with a Gaussian-mixture source: the map needs the closed-form ``Q_t`` and ``π_t``.
    CatcompError
        For an unknown configuration.
    """
    from closed_form import VPSchedule, as_setting
    from verify.samplers.networks import network_scores, train_network

    setting = as_setting(setting)
    setting.require_gaussian("the learned score networks' error maps (closed-form Q_t and π_t)")
    schedule = schedule or VPSchedule()
    config = network_config(config, per_condition)
    train_key, map_key = jax.random.split(jax.random.key(int(seed)))
    frames = []
    for n in sizes:
        result = train_network(jax.random.fold_in(train_key, int(n)), setting.sources, schedule, int(n), config,
                               progress=progress)
        frame = score_error_map(network_scores(result, schedule), setting.composition, schedule,
                                jax.random.fold_in(map_key, int(n)), n_mc=n_mc, n_nodes=n_nodes,
                                t_min=config.t_min, source_names=setting.labels)
        frames.append(frame.assign(setting=setting.name, n=int(n)))
    out = pd.concat(frames, ignore_index=True)
    return out[["setting", "n", "quantity", "source", "t", "law", "mean", "se", "n_mc"]]
