"""The samplers' model and kernels: every score type is a pytree whose second instance reuses compiled code, the
kernels declare their order, float32 and float64 runs agree within Monte Carlo error, no sampler module branches on
a variant name, and inputs that are almost right (a composition, an int seed) are handled or explained.

Monte Carlo tolerances are 4 standard errors of a difference of independent estimates (fixed seeds).
"""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from closed_form import CatcompError, Gaussian, GaussianMixture, VPSchedule, paper_setting
from closed_form.perturbations import DensityPowerError, precision_error
from verify import fkc_sample, naive_ode_sample, naive_sde_sample, source_scores
from verify.samplers import AUTHORS, EULER_MARUYAMA, FKC, HEUN, GaussianScore, MixtureScore
from verify.samplers.model import _run_kernel_jit
from verify.samplers.networks import NetworkConfig, init_network, network_scores, TrainResult
from verify.samplers.perturbed import AffineErrorScore, PerturbedScore

SCHEDULE = VPSchedule()


def _gaussian(shift):
    return Gaussian(np.array([0.3, -0.2]) + shift, np.array([[1.5, 0.4], [0.4, 0.8]]) * (1 + shift))


def _mixture(shift):
    return GaussianMixture(np.array([0.3, 0.7]), np.array([[1.0, 0.0], [-1.0, shift]]),
                           np.stack([np.eye(2), np.eye(2) * (2 + shift)]))


def _network(shift):
    cfg = NetworkConfig(width=8, depth=2, iterations=1, batch=4)
    params = init_network(jax.random.key(int(10 * shift)), cfg, 2, 2)
    return network_scores(TrainResult(params, jnp.zeros(1), cfg, 2), SCHEDULE)[0]


SCORE_TYPES = {
    "gaussian": lambda a: GaussianScore.from_gaussian(_gaussian(a), SCHEDULE),
    "mixture": lambda a: MixtureScore.from_mixture(_mixture(a), SCHEDULE),
    "perturbed (precision)": lambda a: PerturbedScore(GaussianScore.from_gaussian(_gaussian(a), SCHEDULE),
                                                      precision_error(_gaussian(a), SCHEDULE, 0.1 + a)),
    "perturbed (density power)": lambda a: PerturbedScore(
        GaussianScore.from_gaussian(_gaussian(a), SCHEDULE), DensityPowerError(_gaussian(a), SCHEDULE, 0.1 + a)),
    "misspecified (affine)": lambda a: AffineErrorScore.build(GaussianScore.from_gaussian(_gaussian(0.0), SCHEDULE),
                                                              0.1 + a, np.eye(2) * a, np.full(2, a)),
    "network": _network,
}


@pytest.mark.parametrize("name", list(SCORE_TYPES))
def test_every_score_type_is_a_pytree_and_a_second_instance_does_not_recompile(name):
    """``jax.jit`` takes the score itself as an argument; a second instance of the same structure with other values
    gives other values and leaves the compiled-function cache at one entry."""
    make = SCORE_TYPES[name]
    first, second = make(0.0), make(0.5)
    assert jax.tree_util.tree_structure(first) == jax.tree_util.tree_structure(second)
    assert all(isinstance(leaf, (jax.Array, float)) for leaf in jax.tree_util.tree_leaves(first))  # arrays, numbers

    @jax.jit
    def evaluate(score, x):
        return score(x, 0.3)

    x = jnp.array([[0.4, -1.2], [2.0, 0.1]])
    a, b = evaluate(first, x), evaluate(second, x)
    assert evaluate._cache_size() == 1
    np.testing.assert_allclose(np.asarray(a), np.asarray(first(x, 0.3)), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b), np.asarray(second(x, 0.3)), rtol=1e-12)
    assert not np.allclose(np.asarray(a), np.asarray(b))


def test_samplers_reuse_their_compiled_program_across_score_instances():
    """Two compositions of the same structure (other means and covariances): one compiled FKC program."""
    comps = [paper_setting(n).composition for n in ("NFC_ID", "NFC_OOD")]
    for comp in comps:
        fkc_sample(jax.random.key(0), source_scores(comp, SCHEDULE), comp.weights, SCHEDULE, 3, 2, n_steps=5)
    run = _run_kernel_jit.jitted["fn"]
    size = run._cache_size()
    for comp in comps:
        fkc_sample(jax.random.key(1), source_scores(comp, SCHEDULE), comp.weights, SCHEDULE, 3, 2, n_steps=5)
    assert run._cache_size() == size


def test_kernels_declare_their_order():
    assert naive_sde_sample.kernel is EULER_MARUYAMA and naive_ode_sample.kernel is HEUN
    assert (EULER_MARUYAMA.order, EULER_MARUYAMA.order_kind) == (1, "weak")
    assert (HEUN.order, HEUN.order_kind) == (2, "strong")
    assert FKC.order == AUTHORS.order == 1


def test_no_sampler_module_branches_on_a_variant_name():
    """The authors' variant is its own kernel: no comparison with a variant string in verify/samplers."""
    folder = Path(__file__).resolve().parent.parent / "verify" / "samplers"
    pattern = re.compile(r"""(variant|\.name)\s*[!=]=|[!=]=\s*["'](authors|catcomp)["']""")
    hits = [f"{p.name}: {line.strip()}" for p in sorted(folder.glob("*.py"))
            for line in p.read_text().splitlines() if pattern.search(line)]
    assert not hits, hits


def test_float32_and_float64_agree_within_monte_carlo_error():
    """NFC_OOD, K = 8, 100 steps, independent keys: the sample variance and the mean of ``Ẑ`` of a float32 run and a
    float64 run differ by less than 4 SE of their difference; the float32 run is float32 throughout."""
    comp = paper_setting("NFC_OOD").composition
    scores = source_scores(comp, SCHEDULE)
    n = 4000
    runs = {dtype: fkc_sample(jax.random.key(seed), scores, comp.weights, SCHEDULE, n, 8, n_steps=100, dtype=dtype)
            for dtype, seed in (("float64", 1), ("float32", 2))}
    assert runs["float32"].samples.dtype == jnp.float32 and runs["float32"].log_normalizer.dtype == jnp.float32
    assert runs["float64"].samples.dtype == jnp.float64
    var = {k: np.asarray(r.samples, np.float64).var(0, ddof=1) for k, r in runs.items()}
    se_var = np.sqrt(sum(2 * v**2 / (n - 1) for v in var.values()))
    assert np.all(np.abs(var["float32"] - var["float64"]) <= 4 * se_var), (var, se_var)
    z = {k: np.exp(np.asarray(r.log_normalizer, np.float64)) for k, r in runs.items()}
    se_z = np.sqrt(sum(v.var(ddof=1) / n for v in z.values()))
    assert abs(z["float32"].mean() - z["float64"].mean()) <= 4 * se_z


def test_float32_naive_sampler_follows_the_float64_one_path_by_path():
    """Same key: the same start draws and noise (drawn in float64 / computed in float32 and rounded), so the paths
    differ by float32 rounding only."""
    comp = paper_setting("NFC_ID").composition
    scores = source_scores(comp, SCHEDULE)
    a = naive_sde_sample(jax.random.key(3), scores, comp.weights, SCHEDULE, 200, n_steps=50)
    b = naive_sde_sample(jax.random.key(3), scores, comp.weights, SCHEDULE, 200, n_steps=50, dtype="float32")
    assert b.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(b, np.float64), np.asarray(a), atol=1e-4)


def test_invalid_dtype_is_explained():
    comp = paper_setting("NFC_ID").composition
    with pytest.raises(CatcompError, match="float64, float32"):
        fkc_sample(jax.random.key(0), source_scores(comp, SCHEDULE), comp.weights, SCHEDULE, 2, 2, n_steps=3,
                   dtype="float16")


def test_a_composition_passed_as_scores_says_what_to_pass():
    setting = paper_setting("NFC_ID")
    for wrong in (setting.composition, setting):
        with pytest.raises(CatcompError, match=r"source_scores\(composition, schedule\).*composition\.weights"):
            fkc_sample(jax.random.key(0), wrong, setting.weights, SCHEDULE, 2, 2, n_steps=3)
        with pytest.raises(CatcompError, match=r"source_scores"):
            naive_sde_sample(jax.random.key(0), wrong, setting.weights, SCHEDULE, 2, n_steps=3)


def test_an_int_seed_is_a_key_and_other_keys_are_explained():
    comp = paper_setting("NFC_ID").composition
    scores = source_scores(comp, SCHEDULE)
    by_int = fkc_sample(7, scores, comp.weights, SCHEDULE, 3, 2, n_steps=4)
    by_key = fkc_sample(jax.random.key(7), scores, comp.weights, SCHEDULE, 3, 2, n_steps=4)
    np.testing.assert_array_equal(np.asarray(by_int.samples), np.asarray(by_key.samples))
    np.testing.assert_array_equal(np.asarray(naive_sde_sample(7, scores, comp.weights, SCHEDULE, 3, n_steps=4)),
                                  np.asarray(naive_sde_sample(jax.random.key(7), scores, comp.weights, SCHEDULE, 3,
                                                              n_steps=4)))
    with pytest.raises(CatcompError, match=r"jax\.random\.key\(seed\)"):
        fkc_sample(1.5, scores, comp.weights, SCHEDULE, 3, 2, n_steps=4)
