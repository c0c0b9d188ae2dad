r"""The one model every reverse-time sampler here runs, the kernels that step it, and the loop that drives them.

**The model.** :class:`FKCModel` holds the score functions (a pytree: their arrays are the model's leaves) and, as
static fields, everything that shapes the compiled program: the composition weights, the schedule, the dimension,
the resampling strategy, the clips, the corrector, the noise method, the sharding of the swarm axis, the dtype and
the *kernel*. ``jax.jit`` takes it directly, so two models that differ only in their arrays share one compiled
program. :func:`build_model` is the one validation every sampler goes through.

**Kernels.** As in BlackJAX, a sampler is a :class:`Kernel`: a state, ``init(particles, model, t0) -> state``,
``step(keys, state, t, h, model) -> (state, info)``, what the loop keeps of each step's info (``record``) and how the
final state becomes the result (``finish``), with the kernel's order of convergence in the step size declared on it
(``order``, ``order_kind``). FKC's two kernels (:mod:`verify.samplers.smc`) and the naive samplers' Euler–Maruyama and
Heun kernels (:mod:`verify.samplers.naive`) are built from the same parts: :func:`verify.samplers.discretization.mutate`
(the move), :meth:`FKCModel.composed`, and FKC's potential, reweighting and resampling.

**The loop.** :func:`run_kernel` draws the start particles, then ``lax.scan`` s the kernel's step over the time grid
(step ``k``'s keys: :func:`verify.samplers.discretization.step_keys`) and finishes; it is jitted once per kernel,
model structure and shape, with the swarm axis sharded over the devices (:mod:`verify.samplers.sharding`). A large
FKC run on one CPU device is split into blocks of swarms that run over the grid one after another (:func:`block_count`),
so that a step's arrays stay in the processor's caches; the noise and systematic uniforms are indexed by a swarm's
place in the whole run (:attr:`FKCModel.swarm_offset`), so the blocks draw what the whole batch draws.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from closed_form.errors import CatcompError, ShapeMismatchError
from verify.samplers.discretization import (
    check_positive_int,
    check_start,
    composed,
    draw_start,
    split_keys,
    step_keys,
    time_steps,
)
from verify.samplers.mcmc import MALA, check_corrector
from verify.samplers.noise import check_noise_method
from verify.samplers.resampling import STRATEGIES, Never, always, systematic
from verify.samplers.scores import check_scores_and_weights, infer_dim, path_log_density
from verify.samplers.sharding import constrain
from verify.samplers.staging import jit_sampler

#: The dtypes the Monte Carlo samplers run in: float64 (default) and float32 (for large sweeps, as the paper's authors
#: run). Exact computations (:mod:`closed_form`) stay float64.
DTYPES = ("float64", "float32")


def check_dtype(dtype) -> str:
    """``"float64"`` or ``"float32"`` from a name or a NumPy/JAX dtype; :class:`CatcompError` otherwise."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise CatcompError(f"dtype must be one of {', '.join(DTYPES)} (or jnp.float64 / jnp.float32), got {dtype!r}.")
    return name


def cast_floats(tree, dtype: str):
    """``tree`` with every floating array leaf cast to ``dtype`` (other leaves unchanged)."""
    def cast(leaf):
        if isinstance(leaf, (jax.Array, np.ndarray)) and jnp.issubdtype(leaf.dtype, jnp.floating):
            return jnp.asarray(leaf, dtype=dtype)
        return leaf

    return jax.tree_util.tree_map(cast, tree)


@partial(jax.tree_util.register_dataclass, data_fields=[], meta_fields=["function"])
@dataclasses.dataclass(frozen=True, eq=False)
class FunctionScore:
    """A score function that is not a pytree of arrays (a plain Python function or closure), held as a static field:
    compiled code is reused for the same function object only. The score types of :mod:`verify.samplers` are
    pytrees and never need it."""

    function: Callable

    @property
    def dim(self):
        return getattr(self.function, "dim", None)

    def __call__(self, x, t):
        return self.function(x, t)

    def log_density(self, x, t):
        return self.function.log_density(x, t)

    def __hash__(self):  # by identity: a closure's captured values are not compared
        return id(self.function)

    def __eq__(self, other):
        return isinstance(other, FunctionScore) and other.function is self.function


def _is_array_leaf(leaf) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic, float, int))


def as_pytree_score(score):
    """``score`` itself when it is a pytree whose leaves are arrays (every score type here), else a
    :class:`FunctionScore` holding it."""
    if all(_is_array_leaf(leaf) for leaf in jax.tree_util.tree_leaves(score)):
        return score
    return FunctionScore(score)


@dataclasses.dataclass(frozen=True)
class Kernel:
    """A sampler's state and transition, with its declared order (module doc).

    Attributes
    ----------
    name : str
    init : callable ``(particles, model, t0) -> state``
    step : callable ``(keys, state, t, h, model) -> (state, info)``
    record : callable ``info -> pytree``
        What :func:`run_kernel` keeps of every step's info (stacked over the steps).
    finish : callable ``(key, state, records) -> result``
    order : int
        Order of convergence in the step size ``h``.
    order_kind : str
        ``"weak"`` (laws: Euler–Maruyama) or ``"strong"`` (paths from the same start: Heun's ODE solver).
    check_options : callable ``(weight_clip, g_clip, corrector) -> (weight_clip, g_clip)``
        Validates the options this kernel takes (``g_clip="default"`` means the kernel's default); raises
        :class:`CatcompError` saying what is valid.
    """

    name: str
    init: Callable
    step: Callable
    record: Callable
    finish: Callable
    order: int
    order_kind: str
    check_options: Callable

    def __repr__(self):
        return f"Kernel({self.name!r}, order {self.order} ({self.order_kind}))"


@partial(jax.tree_util.register_dataclass, data_fields=["scores", "swarm_offset"],
         meta_fields=["weights", "schedule", "dim", "kernel", "resampling", "weight_clip", "g_clip", "corrector",
                      "noise", "sharding", "dtype"])
@dataclasses.dataclass(frozen=True)
class FKCModel:
    r"""The Feynman–Kac model a sampler runs (build and validate it with :func:`verify.fkc_model`).

    A pytree: ``scores`` (a tuple of score pytrees) holds its arrays; every other field is static.

    Attributes
    ----------
    scores : tuple of score functions ``s_i(x, t)`` (pytrees: :mod:`verify.samplers.scores`)
    weights : tuple of float ``w_i``
    schedule : VPSchedule or CosineSchedule
    dim : int
    kernel : :class:`Kernel`
        The transition: FKC's (:data:`verify.samplers.smc.FKC`), the authors' (:data:`verify.samplers.smc.AUTHORS`),
        or a naive sampler's.
    resampling : :func:`~verify.samplers.resampling.always`, :func:`~verify.samplers.resampling.below_ess` or
        :func:`~verify.samplers.resampling.never` — the resampling strategy.
    weight_clip : float or None
        Clip of the potential's increment ``h g`` to ``[−weight_clip, weight_clip]``.
    g_clip : float or None
        Clip of the rate ``g`` to ``[−g_clip, g_clip]`` before multiplying by ``h`` (the authors').
    corrector : None, :class:`verify.ULA` or :class:`verify.MALA`
        MCMC moves after the Euler–Maruyama move (a MALA corrector without a log density uses
        :meth:`log_density`).
    noise : ``"hash"``, ``"threefry"`` or ``"box-muller"``
    sharding : jax.sharding.Sharding or None
        Sharding of the swarm axis (:func:`verify.samplers.sharding.swarm_sharding`).
    dtype : ``"float64"`` or ``"float32"``
        The dtype of particles, weights and score arrays.
    swarm_offset : None or integer array
        The index, within the whole run, of the first swarm of the batch the model steps (a leaf: traced). ``None``
        (the whole run) except inside :func:`run_kernel`'s blocks of swarms, where it makes ``"hash"`` and
        ``"box-muller"`` noise and systematic resampling draw, for each swarm, what they draw for it in the whole run
        (``"threefry"`` noise, multinomial and custom schemes ignore it, and a run is never split into blocks with
        them).
    """

    scores: tuple
    weights: tuple
    schedule: object
    dim: int
    kernel: Kernel
    resampling: object = None
    weight_clip: float | None = None
    g_clip: float | None = None
    corrector: object = None
    noise: str = "hash"
    sharding: object = None
    dtype: str = "float64"
    swarm_offset: object = None

    @property
    def variant(self) -> str:
        """The kernel's name (``"catcomp"`` or ``"authors"`` for FKC's)."""
        return self.kernel.name

    def composed(self, x, t):
        """``([s_i(x, t)], S(x, t))`` with ``S = Σ_i w_i s_i`` (zero weights skipped)."""
        return composed(self.scores, self.weights, x, t)

    def composed_score(self, x, t):
        """``S(x, t) = Σ_i w_i s_i(x, t)``."""
        return composed(self.scores, self.weights, x, t)[1]

    def log_density(self, x, t):
        """The corrector's ``log γ_t(x)``: its own ``log_density`` if it has one, else ``Σ_i w_i log q^i_t(x)`` from
        the score objects' ``log_density``."""
        own = getattr(self.corrector, "log_density", None)
        if own is not None:
            return own(x, t)
        return sum(w * s.log_density(x, t) for w, s in zip(self.weights, self.scores) if w != 0.0)


def build_model(scores, weights, schedule, kernel: Kernel, *, resampling=None, weight_clip=None, g_clip="default",
                corrector=None, noise: str = "hash", dim: int | None = None, sharding=None,
                dtype="float64") -> FKCModel:
    """Validate a sampler's parts (the one validation every sampler goes through) and build its :class:`FKCModel`.

    Raises
    ------
    CatcompError
        An unknown strategy, noise method or dtype; options the kernel does not take (``kernel.check_options``); no
        dimension.
    ShapeMismatchError, NonFiniteInputError
        Score/weight count mismatch or disagreeing dimensions; NaN weights or clips.
    """
    scores, weights = check_scores_and_weights(scores, weights)
    declared = infer_dim(scores)
    if dim is None:
        if declared is None:
            raise CatcompError("these score functions do not declare a dimension (.dim); pass dim=d.")
        dim = declared
    dim = check_positive_int(dim, "dim")
    if declared is not None and dim != declared:
        raise ShapeMismatchError(f"dim = {dim} but the score functions have dimension {declared}.")
    resampling = always() if resampling is None else resampling
    if not isinstance(resampling, STRATEGIES):
        raise CatcompError(f"resampling must be always(...), below_ess(...) or never(), got "
                           f"{type(resampling).__name__}.")
    weight_clip, g_clip = kernel.check_options(weight_clip, g_clip, corrector)
    check_corrector(corrector)
    check_noise_method(noise)
    dtype = check_dtype(dtype)
    if isinstance(corrector, MALA) and corrector.log_density is None:
        path_log_density(scores, weights)  # raises when a score has no log_density
    scores = tuple(as_pytree_score(s) for s in scores)
    return FKCModel(cast_floats(scores, dtype), weights, schedule, dim, kernel, resampling, weight_clip, g_clip,
                    corrector, noise, sharding, dtype)


def check_run(schedule, n_steps, stop_after, eps, start, dim):
    """Validate a run's grid and start; returns ``(n_steps, stop_after, eps, start)`` with ``start=None`` for
    ``"standard"`` (so that it passes through ``jax.jit``)."""
    n_steps = check_positive_int(n_steps, "n_steps")
    stop_after = n_steps if stop_after is None else check_positive_int(stop_after, "stop_after")
    if stop_after > n_steps:
        raise CatcompError(f"stop_after must lie in [1, n_steps = {n_steps}], got {stop_after}.")
    check_start(start, dim)
    time_steps(schedule, n_steps, eps)  # validates eps
    return n_steps, stop_after, float(eps), (None if isinstance(start, str) else start)


#: Blocks of swarms (:func:`block_count`): a block holds at most this many particle coordinates (``swarms × K × d``),
#: 8 MiB of float64 particles, so that a step's arrays stay in the processor's caches.
BLOCK_COORDINATES = 2**20


def can_block(model: FKCModel, n_particles: int) -> bool:
    """Whether a run of ``model`` can be split into blocks of swarms that draw exactly what the whole batch draws:
    more than one particle per swarm (the naive samplers, one particle per swarm, are a single elementwise pass and
    stay whole), ``"hash"`` or ``"box-muller"`` noise, no corrector, systematic resampling or none, and no sharding
    of the swarm axis."""
    return (n_particles > 1 and model.sharding is None and model.noise != "threefry" and model.corrector is None
            and (isinstance(model.resampling, Never) or getattr(model.resampling, "resampler", None) is systematic))


def block_count(model: FKCModel, n_swarms: int, n_particles: int) -> int:
    """How many blocks of swarms :func:`run_kernel` runs one after another (``1``: the whole batch at once).

    A step of FKC makes a dozen passes over arrays of ``n_swarms × K`` entries (the potential, the reweighting, the
    resampling); once they outgrow the processor's caches every pass runs at memory speed. Swarms are independent, so
    a large run is split into ``B`` blocks of equal size, each run over every step in turn: the smallest divisor ``B``
    of ``n_swarms`` with at most :data:`BLOCK_COORDINATES` particle coordinates per block, if it leaves a block of at
    least a quarter of that. Measured on this project's 2-core CPU (NFC_OOD, 5000 swarms, K = 256, float64): FKC
    11.1 → 8.2 ns per particle-step with 4 blocks, the naive sampler unchanged.

    Only where blocks can run (:func:`can_block`), and only on the CPU: an accelerator runs the whole batch in
    parallel, and blocks would only multiply its kernel launches.
    """
    if jax.default_backend() != "cpu" or not can_block(model, n_particles):
        return 1
    per_swarm = n_particles * model.dim
    need = -(-n_swarms * per_swarm // BLOCK_COORDINATES)
    if need <= 1:
        return 1
    for blocks in range(need, n_swarms + 1):
        if n_swarms % blocks == 0:
            return blocks if (n_swarms // blocks) * per_swarm * 4 >= BLOCK_COORDINATES else 1
    return 1


def _run_kernel(key, model: FKCModel, start, n_swarms: int, n_particles: int, n_steps: int, stop_after: int,
                eps: float, n_blocks: int = 1):
    kernel = model.kernel
    keys = split_keys(key)
    x0 = constrain(draw_start(keys.start, start, (n_swarms, n_particles), model.dim, model.dtype), model.sharding)
    t, h = time_steps(model.schedule, n_steps, eps)
    t = jnp.asarray(t[:stop_after], dtype=model.dtype)
    h = jnp.asarray(h[:stop_after], dtype=model.dtype)

    def keep_dtype(state):
        # A score that computes in float64 whatever its input (a closed-form error model) must not change the
        # carry's dtype under dtype="float32": its results are rounded back (a no-op in float64).
        return jax.tree_util.tree_map(
            lambda a: a.astype(model.dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, state)

    def run(x, block_model):
        def body(state, inputs):
            k, t_k, h_k = inputs
            state, info = kernel.step(step_keys(keys, k), state, t_k, h_k, block_model)
            return keep_dtype(state), kernel.record(info)

        return jax.lax.scan(body, keep_dtype(kernel.init(x, block_model, t[0])), (jnp.arange(stop_after), t, h))

    if n_blocks == 1:
        state, records = run(x0, model)
    else:
        # Blocks of swarms, one after another (block_count). Every leaf of a state has the swarm axis first; the
        # records are swarm means, and the blocks are of equal size, so their mean is the whole batch's.
        size = n_swarms // n_blocks
        blocks = x0.reshape((n_blocks, size) + x0.shape[1:])
        offsets = jnp.arange(n_blocks, dtype=jnp.int32) * size
        state, records = jax.lax.map(
            lambda b: run(b[0], dataclasses.replace(model, swarm_offset=b[1])), (blocks, offsets))
        state = jax.tree_util.tree_map(lambda a: a.reshape((n_swarms,) + a.shape[2:]), state)
        records = jax.tree_util.tree_map(lambda r: jnp.mean(r, axis=0), records)
    return kernel.finish(keys.pick, state, records)


_run_kernel_jit = jit_sampler(_run_kernel, ("n_swarms", "n_particles", "n_steps", "stop_after", "eps", "n_blocks"))


def run_kernel(key, model: FKCModel, start, n_swarms: int, n_particles: int, n_steps: int, stop_after: int,
               eps: float, n_blocks: int | None = None):
    """Run ``model.kernel`` from ``n_swarms × n_particles`` start draws over the first ``stop_after`` steps of the
    ``n_steps`` grid (module doc); jitted (the model and start law are traced pytrees, the counts static).

    ``start`` is ``None`` (``N(0, I)``) or a distribution pytree; validate with :func:`check_run` first.
    ``n_blocks``: run the swarms in that many blocks of equal size, one after another (default
    :func:`block_count`). Every swarm draws the same noise and uniforms as in one block, so the results are the
    same up to rounding (code compiled for another batch shape may round an operation's last bit differently, and
    the swarm-mean records, FKC's ESS, are means of the blocks' means).
    """
    if n_blocks is None:
        n_blocks = block_count(model, n_swarms, n_particles)
    elif n_blocks != 1 and (isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or n_blocks < 1
                            or n_swarms % n_blocks or not can_block(model, n_particles)):
        raise CatcompError(f"n_blocks = {n_blocks} must be a positive divisor of n_swarms = {n_swarms}, and blocks "
                           "need more than one particle per swarm, hash or box-muller noise, no corrector, "
                           "systematic or no resampling and no sharding.")
    return _run_kernel_jit(key, model, start, n_swarms=n_swarms, n_particles=n_particles, n_steps=n_steps,
                           stop_after=stop_after, eps=eps, n_blocks=n_blocks)


__all__ = ["BLOCK_COORDINATES", "DTYPES", "FKCModel", "Kernel", "block_count", "build_model", "can_block",
           "cast_floats", "check_dtype", "check_run", "run_kernel"]
