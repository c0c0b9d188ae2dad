r"""Learned score networks: the authors' ε-predictor MLP, trained with optax, read as score functions.

The model is the authors' (their public code, ``gaussian_experiments/score_model.py``): an MLP on the concatenated
input ``(t, x, onehot(c))`` — ``t`` the raw diffusion time, ``x ∈ R^d``, ``c`` the condition (source) index —
with ``depth`` hidden layers of ``width`` units and SiLU activations and a linear output layer of size ``d``
predicting the noise ``ε``. It is trained by Adam on the ε-prediction (denoising score-matching) loss

.. math:: L(θ) = E_{c}\,E_{t∼U[t_{min}, T]}\,E_{x_0∼\text{pool}_c}\,E_{ε∼N(0, I)}
          \big\lVert ε̂_θ(t, α_t x_0 + σ_t ε, c) − ε\big\rVert^2,

a batch split evenly over the conditions, each condition's ``x_0`` drawn with replacement from a *pool* of ``n``
samples drawn once per run from the exact source (``source.sample``). The score of source ``c`` is then

.. math:: ŝ_c(x, t) = −ε̂_θ(t, x, c) / σ_t.

``per_condition=True`` trains one unconditional model per source instead (the authors' "separate" mode; input
``(t, x)``, each model with its own full batch), vectorized over the sources by ``vmap``.

Choices (``[ours]`` where they differ from the authors'):

* ``t ∼ U[t_min, T]`` with ``t_min = 1e-5`` (the samplers' clamp) [ours; the authors draw ``t ∼ U[0, 1)``, which
  differs on a set of probability 1e-5]. ``T`` is the schedule's horizon.
* Initialization: every weight and bias ``∼ U(−1/√fan_in, 1/√fan_in)``, ``fan_in`` the layer's input width
  (PyTorch's ``nn.Linear`` default, which the authors' models use).
* Float64 throughout, like the rest of catcomp [ours; the authors train in float32].
* The MLP is a plain JAX pytree: :class:`MLPParams` holds one ``(W, b)`` pair per layer (``W`` of shape
  ``(fan_in, fan_out)``; with ``per_condition`` every array has a leading axis of length ``n_conditions``).

Training (:func:`train_network`) is one jitted ``lax.scan`` per chunk of iterations, with an optional tqdm bar
between chunks. The key of iteration ``k`` is ``fold_in(key, k)``, so the result does not depend on the chunk size,
and the same key gives the same parameters. :func:`network_scores` turns parameters into one score function per
source, a pytree whose arrays are the parameters, so the samplers (``naive_sde_sample``, ``fkc_sample``) take them
unchanged and reuse their compiled code across networks of one shape.

**Parameter cache.** Off by default. Inside ``with network_cache(folder):`` (or with the environment variable
``CATCOMP_NETWORK_CACHE=folder``) :func:`train_network` loads the parameters and losses of a run it has seen before
instead of retraining, and stores new ones; the entry is keyed by a hash of everything that determines the result
(the key's data, the sources' arrays, the schedule, ``n``, the configuration, the training code and the library
versions; not ``chunk``), so a cached result is bit-identical to a fresh one. An unreadable entry is ignored with a
warning and rewritten. Details: :mod:`verify.samplers.network_cache`. The report sets ``<out>/cache/networks``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from closed_form.errors import CatcompError, ShapeMismatchError
from verify.samplers import network_cache

#: Lower end of the training times ``t ∼ U[T_MIN, T]``: the samplers' time clamp.
T_MIN = 1e-5


class NetworkConfig(NamedTuple):
    r"""Architecture and training of an ε-predictor MLP.

    Attributes
    ----------
    width, depth : int
        Units per hidden layer and number of hidden layers.
    iterations : int
        Adam steps.
    lr : float
        Adam's learning rate (optax defaults otherwise: ``b1 = 0.9``, ``b2 = 0.999``, ``eps = 1e-8``).
    batch : int
        Samples per step, split evenly over the conditions: ``batch // n_conditions`` each (the authors' integer
        division); with ``per_condition`` each model gets ``batch`` samples of its own source.
    per_condition : bool
        One unconditional model per source instead of one model conditioned by a one-hot input.
    activation : str
        Hidden activation; ``"silu"`` (the authors') is the only one offered.
    t_min : float
        Lower end of the training times (module doc).
    """

    width: int = 64
    depth: int = 3
    iterations: int = 3000
    lr: float = 2e-3
    batch: int = 384
    per_condition: bool = False
    activation: str = "silu"
    t_min: float = T_MIN

    @classmethod
    def paper(cls, per_condition: bool = False) -> "NetworkConfig":
        """The authors' configuration: 4 hidden layers of 512 SiLU units, Adam at 2e-4, batch 512, 20 000 steps.

        Their batch of 512 over three conditions is 170 per condition (510 in all, integer division), as
        :meth:`batch_per_condition` gives. Cost on this project's shared 2-core CPU (float64, load average 7):
        11 steps/s, so about 30 min per network.
        """
        return cls(width=512, depth=4, iterations=20_000, lr=2e-4, batch=512, per_condition=per_condition)

    @classmethod
    def default(cls, per_condition: bool = False) -> "NetworkConfig":
        """A configuration two shared CPU cores afford: 3 hidden layers of 64 SiLU units, 3000 Adam steps at 2e-3,
        batch 384. Measured on this project's shared 2-core machine (float64, load average 7, three conditions):
        590 steps/s, 5.1 s per network after a one-time compilation of about 5 s; with ``per_condition`` 170 steps/s
        (18 s)."""
        return cls(per_condition=per_condition)

    @classmethod
    def small(cls, per_condition: bool = False) -> "NetworkConfig":
        """A configuration for quick runs: 2 hidden layers of 32 units, 400 steps at 3e-3, batch 192 (measured as
        :meth:`default`: 4700 steps/s, 0.09 s per network after compiling)."""
        return cls(width=32, depth=2, iterations=400, lr=3e-3, batch=192, per_condition=per_condition)

    def batch_per_condition(self, n_conditions: int) -> int:
        """Samples per condition in one step: ``batch // n_conditions`` (conditional), ``batch`` (per condition)."""
        return self.batch if self.per_condition else self.batch // n_conditions


class MLPParams(NamedTuple):
    """Parameters of an MLP: ``weights[l]`` of shape ``(fan_in, fan_out)`` and ``biases[l]`` of shape ``(fan_out,)``
    per layer (hidden layers, then the output layer); a leading axis per model when several are stacked."""

    weights: tuple
    biases: tuple


class TrainResult(NamedTuple):
    """What :func:`train_network` returns: the parameters, the loss of every step (shape ``(iterations,)``; with
    ``per_condition`` shape ``(iterations, n_conditions)``), and the configuration and number of conditions."""

    params: MLPParams
    losses: jax.Array
    config: NetworkConfig
    n_conditions: int


_ACTIVATIONS = {"silu": jax.nn.silu}


# ------------------------------------------------------------------------------------------------ validation
def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise CatcompError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def check_config(config: NetworkConfig, n_conditions: int) -> NetworkConfig:
    """Validate ``config`` for ``n_conditions`` sources; raises :class:`CatcompError` saying what is valid."""
    if not isinstance(config, NetworkConfig):
        raise CatcompError(f"config must be a NetworkConfig (e.g. NetworkConfig.default()), got {type(config).__name__}.")
    n_conditions = _positive_int(n_conditions, "the number of conditions")
    for name in ("width", "depth", "iterations", "batch"):
        _positive_int(getattr(config, name), f"NetworkConfig.{name}")
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise CatcompError(f"NetworkConfig.lr must be a positive finite number, got {config.lr!r}.")
    if config.activation not in _ACTIVATIONS:
        raise CatcompError(f"unknown activation {config.activation!r}; valid: {', '.join(sorted(_ACTIVATIONS))}.")
    if not (math.isfinite(config.t_min) and config.t_min > 0):
        raise CatcompError(f"NetworkConfig.t_min must be positive and finite (σ_0 = 0), got {config.t_min!r}.")
    if not config.per_condition and config.batch < n_conditions:
        raise CatcompError(f"NetworkConfig.batch = {config.batch} is smaller than the {n_conditions} conditions it "
                           "is split over; it must be at least their number.")
    return config


# ------------------------------------------------------------------------------------------------ the MLP
def init_mlp(key, sizes) -> MLPParams:
    r"""An MLP with layer sizes ``sizes = (in, hidden…, out)``: each weight and bias ``∼ U(±1/√fan_in)``, float64."""
    return _init_mlp(key, tuple(int(n) for n in sizes))


@partial(jax.jit, static_argnums=1)
def _init_mlp(key, sizes) -> MLPParams:
    # One compiled program per layout instead of one per split, slice and draw.
    weights, biases = [], []
    for k, (fan_in, fan_out) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        kw, kb = jax.random.split(k)
        bound = 1.0 / math.sqrt(fan_in)
        weights.append(jax.random.uniform(kw, (fan_in, fan_out), jnp.float64, -bound, bound))
        biases.append(jax.random.uniform(kb, (fan_out,), jnp.float64, -bound, bound))
    return MLPParams(tuple(weights), tuple(biases))


@partial(jax.jit, static_argnames="activation")
def mlp_apply(params: MLPParams, inputs, activation: str = "silu"):
    """The MLP on ``inputs`` of shape ``(..., in)``: ``activation`` after every layer but the last. Jitted (one
    program per shape outside a trace; inlined inside one)."""
    act = _ACTIVATIONS[activation]
    h = inputs
    for w, b in zip(params.weights[:-1], params.biases[:-1]):
        h = act(h @ w + b)
    return h @ params.weights[-1] + params.biases[-1]


def _network_inputs(t, x, condition):
    """``(t, x, condition)`` concatenated along the last axis, ``t`` and ``condition`` broadcast over ``x``'s leading
    axes; ``condition`` is a one-hot vector, or an empty one for an unconditional model."""
    lead = x.shape[:-1]
    t_col = jnp.broadcast_to(jnp.asarray(t, x.dtype), lead + (1,))
    cond = jnp.broadcast_to(condition.astype(x.dtype), lead + condition.shape[-1:])
    return jnp.concatenate([t_col, x, cond], axis=-1)


def _layer_sizes(config: NetworkConfig, dim: int, n_conditions: int) -> tuple:
    n_in = 1 + dim + (0 if config.per_condition else n_conditions)
    return (n_in,) + (config.width,) * config.depth + (dim,)


def init_network(key, config: NetworkConfig, dim: int, n_conditions: int) -> MLPParams:
    """Initial parameters: one conditional MLP, or ``n_conditions`` stacked ones with ``per_condition``."""
    config = check_config(config, n_conditions)
    sizes = _layer_sizes(config, _positive_int(dim, "the dimension"), n_conditions)
    return _init_network(key, tuple(int(n) for n in sizes), bool(config.per_condition), int(n_conditions))


@partial(jax.jit, static_argnums=(1, 2, 3))
def _init_network(key, sizes, per_condition, n_conditions):
    if per_condition:
        return jax.vmap(lambda k: _init_mlp(k, sizes))(jax.random.split(key, n_conditions))
    return _init_mlp(key, sizes)


@partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _init_training(key, sizes, per_condition, n_conditions, lr):
    """The initial parameters (:func:`init_network`) and Adam's initial state for them (vmapped over stacked
    per-condition models), in one compiled program."""
    import optax

    params = _init_network(key, sizes, per_condition, n_conditions)
    opt = optax.adam(lr)
    return params, (jax.vmap(opt.init)(params) if per_condition else opt.init(params))


# ------------------------------------------------------------------------------------------------ training
class _Problem(NamedTuple):
    """The static part of a training run (hashable: a ``jax.jit`` cache key)."""

    config: NetworkConfig
    schedule: object
    n_conditions: int
    per_batch: int


def _eps_loss(params, problem: _Problem, pools, key, conditions):
    """Mean over the batch of ``‖ε̂(t, α_t x_0 + σ_t ε, c) − ε‖²`` for one model.

    ``pools`` has shape ``(C, n, d)`` (``C = 1`` for one per-condition model); ``conditions`` the one-hot rows
    ``(C, C')`` fed to the network (``C' = 0`` for unconditional models).
    """
    cfg, sched = problem.config, problem.schedule
    n_pool, dim = pools.shape[1], pools.shape[2]
    k_idx, k_t, k_eps = jax.random.split(key, 3)
    shape = (pools.shape[0], problem.per_batch)
    idx = jax.random.randint(k_idx, shape, 0, n_pool)
    x0 = jnp.take_along_axis(pools, idx[..., None], axis=1)  # (C, b, d)
    t = jax.random.uniform(k_t, shape + (1,), jnp.float64, cfg.t_min, sched.T)
    eps = jax.random.normal(k_eps, shape + (dim,), jnp.float64)
    x_t = sched.alpha(t) * x0 + sched.sigma(t) * eps
    cond = jnp.broadcast_to(conditions[:, None, :], shape + conditions.shape[-1:])
    pred = mlp_apply(params, jnp.concatenate([t, x_t, cond], axis=-1), cfg.activation)
    return jnp.mean(jnp.sum((pred - eps) ** 2, axis=-1))


def _optimizer(config: NetworkConfig):
    import optax  # here, not at module level: `import verify` should not pay for it

    return optax.adam(config.lr)


def _train_chunk(carry, steps, key, pools, problem: _Problem):
    """``len(steps)`` Adam steps from ``carry = (params, opt_state)``; returns the new carry and the step losses."""
    import optax

    opt = _optimizer(problem.config)
    n_cond = problem.n_conditions

    def one_model_step(params, opt_state, step_key, model_pools, conditions):
        loss, grads = jax.value_and_grad(_eps_loss)(params, problem, model_pools, step_key, conditions)
        # optax's bias correction raises a float to an int32 step count, which strict promotion refuses.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, loss

    def step(carry, k):
        params, opt_state = carry
        step_key = jax.random.fold_in(key, k)
        if problem.config.per_condition:
            # One independent model per source: its own key, its own pool, no condition input.
            keys = jax.random.split(step_key, n_cond)
            params, opt_state, loss = jax.vmap(one_model_step, in_axes=(0, 0, 0, 0, None))(
                params, opt_state, keys, pools[:, None], jnp.zeros((1, 0)))
        else:
            params, opt_state, loss = one_model_step(params, opt_state, step_key, pools, jnp.eye(n_cond))
        return (params, opt_state), loss

    return jax.lax.scan(step, carry, steps)


_train_chunk = jax.jit(_train_chunk, static_argnames=("problem",))


def _source_dim(sources: tuple) -> int:
    """The sources' common dimension; raises for an empty list or sources of different dimensions."""
    if not sources:
        raise CatcompError("at least one source is needed to train a network.")
    dims = {int(s.dim) for s in sources}
    if len(dims) != 1:
        raise ShapeMismatchError(f"the sources have different dimensions {sorted(dims)}; all must agree.")
    return dims.pop()


def draw_pools(key, sources, n: int):
    """``n`` exact draws per source (``source.sample(key_i, n)``, one subkey per source), shape ``(C, n, d)``."""
    n = _positive_int(n, "the pool size n")
    sources = tuple(sources)
    _source_dim(sources)
    keys = jax.random.split(key, len(sources))
    # Stacked in NumPy (no compilation per pool shape); the values are the draws themselves.
    return jnp.asarray(np.stack([np.asarray(s.sample(k, n), np.float64) for s, k in zip(sources, keys)]),
                       dtype=jnp.float64)


def train_network(key, sources, schedule, n: int, config: NetworkConfig | None = None, *, chunk: int = 500,
                  progress: bool = True) -> TrainResult:
    r"""Train the ε-predictor (module doc) on pools of ``n`` exact draws per source.

    Parameters
    ----------
    key : jax.random key
        Split into the pools', the initialization's and the steps' keys; the same key gives the same parameters.
    sources : sequence of :class:`closed_form.Gaussian` / :class:`closed_form.GaussianMixture` (anything with
        ``sample(key, n)`` and ``dim``)
        The conditions, in order; condition ``c`` is ``sources[c]``.
    schedule : VPSchedule or CosineSchedule
    n : int
        Pool size per source, drawn once.
    config : NetworkConfig, default ``NetworkConfig.default()``
    chunk : int
        Steps per jitted ``lax.scan`` (the progress bar advances between chunks); does not change the result.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    TrainResult
        From the parameter cache when one is active and holds this run (module doc); otherwise trained, and then
        stored in the active cache.

    Raises
    ------
    CatcompError
        For an invalid configuration, pool size, chunk or empty source list (the message says what is valid);
        :class:`ShapeMismatchError` for sources of different dimensions.
    """
    config = NetworkConfig.default() if config is None else config
    sources = tuple(sources)
    config = check_config(config, max(len(sources), 1))
    chunk = _positive_int(chunk, "chunk")
    n, dim, n_cond = _positive_int(n, "the pool size n"), _source_dim(sources), len(sources)
    k_pool, k_init, k_steps = jax.random.split(key, 3)
    entry = _cache_entry(key, sources, schedule, n, config)
    if entry is not None:
        params_shape = jax.eval_shape(lambda k: init_network(k, config, dim, n_cond), k_init)
        leaf_shapes = [leaf.shape for leaf in jax.tree_util.tree_leaves(params_shape)]
        losses_shape = (config.iterations, n_cond) if config.per_condition else (config.iterations,)
        hit = network_cache.load_entry(entry[0], entry[1], leaf_shapes, losses_shape)
        if hit is not None:
            params = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params_shape),
                                                  [jnp.asarray(leaf, dtype=leaf.dtype) for leaf in hit[0]])
            return TrainResult(params, jnp.asarray(hit[1], dtype=hit[1].dtype), config, n_cond)
    pools = draw_pools(k_pool, sources, n)
    params, opt_state = _init_training(k_init, tuple(int(n) for n in _layer_sizes(config, dim, n_cond)),
                                       bool(config.per_condition), int(n_cond), float(config.lr))
    problem = _Problem(config, schedule, n_cond, config.batch_per_condition(n_cond))

    from tqdm.auto import tqdm

    losses = []
    carry = (params, opt_state)
    with tqdm(total=config.iterations, disable=not progress, desc="training", unit="step") as bar:
        for start in range(0, config.iterations, chunk):
            steps = np.arange(start, min(start + chunk, config.iterations))
            carry, chunk_losses = _train_chunk(carry, steps, k_steps, pools, problem)
            losses.append(np.asarray(chunk_losses))
            bar.update(len(steps))
            bar.set_postfix(loss=float(np.mean(losses[-1])))
    result = TrainResult(carry[0], jnp.asarray(np.concatenate(losses), dtype=jnp.float64), config, n_cond)
    if entry is not None:
        network_cache.save_entry(entry[0], entry[1], jax.tree_util.tree_leaves(result.params), result.losses)
    return result


def _cache_entry(key, sources, schedule, n, config):
    """``(path, description)`` of the run's entry in the active parameter cache (:mod:`verify.samplers.network_cache`),
    or ``None`` when the cache is off or the sources cannot be described (then with a warning)."""
    folder = network_cache.network_cache_dir()
    if folder is None:
        return None
    description = network_cache.entry_description(key, sources, schedule, n, config)
    if description is None:
        warnings.warn("the network cache cannot describe these sources or this schedule (non-array leaves, or a "
                      "schedule that is not a dataclass); training without it.", stacklevel=3)
        return None
    return network_cache.entry_path(folder, description), description


# ------------------------------------------------------------------------------------------------ as scores
@partial(jax.tree_util.register_dataclass, data_fields=["params", "condition"],
         meta_fields=["schedule", "activation"])
@dataclasses.dataclass(frozen=True)
class NetworkScore:
    r"""The score ``ŝ(x, t) = −ε̂_θ(t, x, c)/σ_t`` of one condition of a trained ε-predictor.

    A pytree: the parameters and the one-hot ``condition`` (empty for a per-condition model) are array leaves,
    ``schedule`` and ``activation`` static, so samplers trace it like any exact score. ``x`` of shape ``(..., d)``.
    """

    params: MLPParams
    condition: jax.Array
    schedule: object
    activation: str

    @property
    def dim(self) -> int:
        return int(self.params.weights[-1].shape[-1])

    def eps(self, x, t):
        """``ε̂_θ(t, x, c)``, the predicted noise, shape of ``x``."""
        return _network_eps(self, x, t)

    def __call__(self, x, t):
        return _network_score(self, x, t)


# Module-level jitted cores (the score object is a pytree argument): one program per shape outside a trace.
@jax.jit
def _network_eps(score, x, t):
    return mlp_apply(score.params, _network_inputs(t, x, score.condition), score.activation)


@jax.jit
def _network_score(score, x, t):
    return -_network_eps(score, x, t) / score.schedule.sigma(t)


@jax.jit
def _model_params(params, c):
    """The parameters of model ``c`` of stacked per-condition models (``c`` traced: one program per layout)."""
    return jax.tree_util.tree_map(lambda a: a[c], params)


def network_scores(result: TrainResult, schedule) -> tuple:
    """One :class:`NetworkScore` per source from a :class:`TrainResult`, in the sources' order: the samplers'
    ``scores`` argument (``naive_sde_sample(key, network_scores(result, schedule), weights, schedule, n)``)."""
    if not isinstance(result, TrainResult):
        raise CatcompError(f"network_scores takes the TrainResult of train_network, got {type(result).__name__}.")
    cfg, n_cond = result.config, result.n_conditions
    if cfg.per_condition:
        empty = jnp.asarray(np.zeros((0,)), dtype=jnp.float64)
        return tuple(NetworkScore(_model_params(result.params, c), empty, schedule, cfg.activation)
                     for c in range(n_cond))
    eye = np.eye(n_cond)
    return tuple(NetworkScore(result.params, jnp.asarray(eye[c], dtype=jnp.float64), schedule, cfg.activation)
                 for c in range(n_cond))


__all__ = ["MLPParams", "NetworkConfig", "NetworkScore", "T_MIN", "TrainResult", "draw_pools", "init_mlp",
           "init_network", "mlp_apply", "network_scores", "train_network"]
