"""Learned score networks (the authors' ε-predictor MLP) and their exact error maps: training is deterministic and
reduces the loss, the networks plug into the samplers, and the Monte Carlo error map agrees with independent exact
routes (zero for the exact score, the closed-form DSM excess for an affine error)."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from closed_form import CatcompError, Gaussian, NotGaussianSettingError, ShapeMismatchError, VPSchedule, paper_setting
from closed_form.score_matching import affine_dsm_excess, affine_sq_norm
from verify.analysis.score_errors import score_error_map, sqrt_time_nodes
from verify.experiments.score_error_maps import score_error_maps
from verify.samplers import (
    NetworkConfig,
    NetworkScore,
    TrainResult,
    fkc_sample,
    mlp_apply,
    naive_sde_sample,
    network_scores,
    source_scores,
    train_network,
)
from verify.samplers import network_cache
from verify.samplers import networks as networks_module
from verify.samplers.networks import check_config
from verify.samplers.scores import GaussianScore

SCHEDULE = VPSchedule()
SETTING = paper_setting("NFC_OOD")
#: Tiny enough that one training run (300 steps) takes well under a second after compilation.
TINY = NetworkConfig(width=16, depth=2, iterations=300, lr=3e-3, batch=96)
#: Its per-condition twin, shortened (one compilation shared by the tests that train it, pools of 200).
SEPARATE = TINY._replace(per_condition=True, iterations=50)
#: Standard errors a Monte Carlo comparison may differ by (a fixed-seed test: ~6e-5 two-sided false alarms).
K_SE = 4.0


@pytest.fixture(scope="module")
def trained():
    return train_network(jax.random.key(0), SETTING.sources, SCHEDULE, 1000, TINY, chunk=100, progress=False)


def test_paper_config_is_the_authors():
    cfg = NetworkConfig.paper()
    assert (cfg.width, cfg.depth, cfg.activation) == (512, 4, "silu")
    assert (cfg.lr, cfg.batch, cfg.iterations, cfg.per_condition) == (2e-4, 512, 20_000, False)
    assert cfg.batch_per_condition(3) == 170  # the authors' 512 // 3
    assert NetworkConfig.paper(per_condition=True).per_condition


def test_training_loss_falls(trained):
    """Mean loss of the last 100 steps below that of the first 100, by more than K_SE standard errors of the
    difference (each step's loss is a fresh batch, so the steps' losses give the SE)."""
    losses = np.asarray(trained.losses)
    first, last = losses[:100], losses[-100:]
    se = np.hypot(first.std(ddof=1), last.std(ddof=1)) / np.sqrt(100)
    assert trained.losses.shape == (TINY.iterations,)
    assert first.mean() - last.mean() > K_SE * se, (first.mean(), last.mean(), se)


def test_same_seed_same_params_whatever_the_chunk(trained):
    again = train_network(jax.random.key(0), SETTING.sources, SCHEDULE, 1000, TINY, chunk=300, progress=False)
    for a, b in zip(jax.tree_util.tree_leaves(trained.params), jax.tree_util.tree_leaves(again.params)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(trained.losses, again.losses)
    other = train_network(jax.random.key(1), SETTING.sources, SCHEDULE, 1000, TINY, chunk=100, progress=False)
    assert all(np.any(np.asarray(a) != np.asarray(b)) for a, b in
               zip(jax.tree_util.tree_leaves(trained.params), jax.tree_util.tree_leaves(other.params)))


def test_network_score_is_minus_eps_over_sigma(trained):
    """ŝ_c(x, t) = −ε̂(t, x, onehot(c))/σ_t, computed here from the MLP by hand, on x with two leading axes."""
    scores = network_scores(trained, SCHEDULE)
    x = jax.random.normal(jax.random.key(2), (5, 4, 2))
    t = 0.3
    for c, score in enumerate(scores):
        inputs = np.concatenate([np.full((5, 4, 1), t), np.asarray(x), np.broadcast_to(np.eye(3)[c], (5, 4, 3))],
                                axis=-1)
        expected = -np.asarray(mlp_apply(trained.params, inputs)) / np.sqrt(-np.expm1(2 * float(SCHEDULE.log_alpha(t))))
        np.testing.assert_allclose(score(x, t), expected, rtol=1e-12)
        assert score.dim == 2


def test_per_condition_models_are_stacked_and_plug_in():
    result = train_network(jax.random.key(0), SETTING.sources, SCHEDULE, 200, SEPARATE, progress=False)
    assert result.losses.shape == (50, 3)
    assert all(w.shape[0] == 3 for w in result.params.weights)
    assert result.params.weights[0].shape[1:] == (1 + 2, 16)  # input (t, x): no condition
    scores = network_scores(result, SCHEDULE)
    out = scores[1](np.ones((7, 2)), 0.5)
    assert out.shape == (7, 2) and np.all(np.isfinite(out))


def test_network_scores_plug_into_the_samplers(trained):
    scores = network_scores(trained, SCHEDULE)
    x = naive_sde_sample(jax.random.key(3), scores, SETTING.weights, SCHEDULE, 64, n_steps=20)
    assert x.shape == (64, 2) and np.all(np.isfinite(x))
    res = fkc_sample(jax.random.key(4), scores, SETTING.weights, SCHEDULE, 16, 4, n_steps=20)
    assert res.samples.shape == (16, 2) and np.all(np.isfinite(res.samples))
    assert np.all(np.isfinite(res.particles))


def test_error_map_of_the_exact_score_is_zero():
    """The error-map code path with ŝ = s: the same exact-score objects give exactly 0; the closed-form route
    (``Gaussian.noised(...).score``, plain functions) gives round-off only."""
    comp = SETTING.composition
    frame = score_error_map(source_scores(comp, SCHEDULE), comp, SCHEDULE, jax.random.key(5), n_mc=50, n_nodes=4)
    assert (frame.loc[frame.quantity != "ratio", ["mean", "se"]].to_numpy() == 0.0).all()
    assert frame.loc[frame.quantity == "ratio", "mean"].isna().all()  # 0/0: undefined, documented
    assert set(frame.law) == {"train", "target", "path"} and len(frame[frame.quantity == "error"]) == 3 * 4 * 3
    plain = tuple((lambda x, t, src=src: src.noised(SCHEDULE, float(t)).score(x)) for src in comp.sources)
    frame = score_error_map(plain, comp, SCHEDULE, jax.random.key(5), n_mc=50, n_nodes=4)
    assert frame.loc[frame.quantity != "ratio", "mean"].max() < 1e-24


def test_error_map_dsm_excess_matches_the_closed_form_for_an_affine_error():
    """ŝ_i the exact score of a misspecified Gaussian, so δ_i is affine and its DSM excess under q^i_t and Q_t is
    the checked Gauss–Legendre closed form :func:`closed_form.score_matching.affine_dsm_excess` (on [0, T]). The
    error map (t_min = 1e-12, so the ranges differ by a negligible 1e-12) must agree within K_SE of its standard
    errors plus its quadrature error, which is measured separately, without Monte Carlo, by applying the map's √t
    rule to the exact integrand; that quadrature error must itself be far below the Monte Carlo SE (~1 % here):
    below 1e-3 relative (measured: 3e-5 with 16 nodes)."""
    comp = SETTING.composition
    wrong = [Gaussian(np.asarray(src.mean) + 0.3, np.asarray(src.cov) * 1.3) for src in comp.sources]
    scores = tuple(GaussianScore.from_gaussian(g, SCHEDULE) for g in wrong)
    exact = source_scores(comp, SCHEDULE)
    t_min, n_nodes = 1e-12, 16
    frame = score_error_map(scores, comp, SCHEDULE, jax.random.key(6), n_mc=4000, n_nodes=n_nodes, t_min=t_min)
    excess = frame[frame.quantity == "dsm_excess"].set_index(["source", "law"])
    nodes, weights = sqrt_time_nodes(t_min, SCHEDULE.T, n_nodes)
    for i, (s_hat, s) in enumerate(zip(scores, exact)):
        def field(t, s_hat=s_hat, s=s):
            return _affine_difference(s_hat, s, t)
        laws = {"train": lambda t, i=i: comp.sources[i].noised(SCHEDULE, t),
                "target": lambda t: comp.target.noised(SCHEDULE, t)}
        for law, path in laws.items():
            truth = affine_dsm_excess(field, path, SCHEDULE)
            integrand = [float(SCHEDULE.sigma2(t)) * float(affine_sq_norm(*field(t), path(t).mean, path(t).cov))
                         for t in nodes]
            quad_error = abs(weights @ np.asarray(integrand) / (SCHEDULE.T - t_min) - truth)
            assert quad_error < 1e-3 * truth, (i, law, quad_error, truth)
            row = excess.loc[(str(i), law)]
            assert abs(row["mean"] - truth) <= K_SE * row["se"] + quad_error, (i, law, row["mean"], truth, row["se"])


@jax.jit
def _affine_difference(s_hat, s, t):
    """``(A_ŝ − A_s, b_ŝ − b_s)`` at ``t``: the affine error field (one compiled program per shape)."""
    (a1, b1), (a0, b0) = s_hat.affine(t), s.affine(t)
    return a1 - a0, b1 - b0


def test_sqrt_time_rule_integrates_exactly():
    """The n-node Gauss–Legendre rule in u = √t integrates t^{k/2} (degree k + 1 in u, after dt = 2u du) exactly
    for k + 1 < 2n."""
    t, w = sqrt_time_nodes(1e-5, 1.0, 8)
    for k in range(0, 12):  # ∫ t^{k/2} dt is a polynomial of degree k + 1 in u = √t
        exact = (1.0 - (1e-5) ** (k / 2 + 1)) / (k / 2 + 1)
        np.testing.assert_allclose(w @ t ** (k / 2), exact, rtol=1e-12)


@pytest.mark.parametrize("bad, match", [
    (dict(width=0), "width"),
    (dict(depth=1.5), "depth"),
    (dict(iterations=-3), "iterations"),
    (dict(lr=float("nan")), "lr"),
    (dict(lr=0.0), "lr"),
    (dict(activation="relu"), "valid: silu"),
    (dict(batch=2), "at least their number"),
    (dict(t_min=0.0), "t_min"),
])
def test_invalid_configs_raise(bad, match):
    with pytest.raises(CatcompError, match=match):
        train_network(jax.random.key(0), SETTING.sources, SCHEDULE, 10, TINY._replace(**bad), progress=False)


@given(field=st.sampled_from(["width", "depth", "iterations", "batch"]), value=st.integers(-10**6, 0))
def test_non_positive_sizes_raise(field, value):
    with pytest.raises(CatcompError, match=f"NetworkConfig.{field} must be a positive integer"):
        check_config(TINY._replace(**{field: value}), 3)


@given(lr=st.one_of(st.floats(max_value=0.0), st.just(float("inf")), st.just(float("nan"))))
def test_non_positive_learning_rates_raise(lr):
    with pytest.raises(CatcompError, match="lr must be a positive finite number"):
        check_config(TINY._replace(lr=lr), 3)


def test_invalid_inputs_raise(trained):
    key = jax.random.key(0)
    with pytest.raises(CatcompError, match="pool size n must be a positive integer"):
        train_network(key, SETTING.sources, SCHEDULE, 0, TINY, progress=False)
    with pytest.raises(CatcompError, match="chunk must be a positive integer"):
        train_network(key, SETTING.sources, SCHEDULE, 10, TINY, chunk=0, progress=False)
    with pytest.raises(CatcompError, match="at least one source"):
        train_network(key, (), SCHEDULE, 10, TINY, progress=False)
    with pytest.raises(ShapeMismatchError, match="different dimensions"):
        train_network(key, (Gaussian(np.zeros(2), np.eye(2)), Gaussian(np.zeros(3), np.eye(3))), SCHEDULE, 10, TINY,
                      progress=False)
    with pytest.raises(CatcompError, match="NetworkConfig"):
        train_network(key, SETTING.sources, SCHEDULE, 10, dict(width=3), progress=False)
    with pytest.raises(CatcompError, match="TrainResult"):
        network_scores(trained.params, SCHEDULE)
    comp = SETTING.composition
    scores = network_scores(trained, SCHEDULE)
    with pytest.raises(ShapeMismatchError, match="one per source"):
        score_error_map(scores[:2], comp, SCHEDULE, key)
    with pytest.raises(CatcompError, match="n_mc must be an integer ≥ 2"):
        score_error_map(scores, comp, SCHEDULE, key, n_mc=1)
    with pytest.raises(CatcompError, match="positive integer"):
        score_error_map(scores, comp, SCHEDULE, key, n_nodes=0)
    with pytest.raises(ShapeMismatchError, match="must return the shape of x"):
        score_error_map((lambda x, t: x[..., 0],) * 3, comp, SCHEDULE, key, n_mc=10, n_nodes=2)
    with pytest.raises(CatcompError, match="valid: default, small, paper"):
        score_error_maps("NFC_OOD", seed=0, config="huge")
    with pytest.raises(NotGaussianSettingError, match="Gaussian-mixture source"):
        score_error_maps("GMM_OOD", seed=0)
    with pytest.raises(CatcompError, match="needs a seed"):
        score_error_maps("NFC_OOD")
    assert isinstance(trained, TrainResult) and isinstance(scores[0], NetworkScore)


@pytest.mark.slow
def test_training_side_error_falls_with_the_pool_size():
    """A small network trained on n = 100 vs n = 10 000 exact draws per source (FC_ID, same seed, 2000 steps):
    the training-side DSM excess summed over the sources is larger for n = 100 by more than K_SE standard errors of
    the difference (independent map draws; the SE is the error map's own)."""
    setting = paper_setting("FC_ID")
    cfg = NetworkConfig(width=32, depth=2, iterations=2000, lr=3e-3, batch=192)
    totals = {}
    for n in (100, 10_000):
        result = train_network(jax.random.key(0), setting.sources, SCHEDULE, n, cfg, progress=False)
        frame = score_error_map(network_scores(result, SCHEDULE), setting.composition, SCHEDULE,
                                jax.random.fold_in(jax.random.key(1), n), n_mc=1000, n_nodes=10)
        rows = frame[(frame.quantity == "dsm_excess") & (frame.law == "train")]
        totals[n] = (rows["mean"].sum(), np.sqrt((rows["se"] ** 2).sum()))
    (small, se_small), (large, se_large) = totals[100], totals[10_000]
    assert small - large > K_SE * np.hypot(se_small, se_large), totals


# ------------------------------------------------------------------------------------------------ parameter cache
def _leaves_equal(a: TrainResult, b: TrainResult) -> None:
    for x, y in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params), strict=True):
        assert x.dtype == y.dtype == jnp.float64
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.losses, b.losses)
    assert (a.config, a.n_conditions) == (b.config, b.n_conditions)


def _no_training(monkeypatch):
    """Make any training step fail, so a call that returns must have read the cache."""
    def refuse(*args, **kwargs):
        raise AssertionError("trained although the cache holds this run")

    monkeypatch.setattr(networks_module, "_train_chunk", refuse)


def _train(key=0, n=1000, config=TINY, sources=SETTING.sources, **kwargs):
    kwargs.setdefault("progress", False)
    return train_network(jax.random.key(key), sources, SCHEDULE, n, config, **kwargs)


def test_cached_parameters_are_bit_identical_to_fresh_ones(trained, tmp_path, monkeypatch):
    """First call trains and stores (its result equals the uncached fixture's), the second loads without training
    (training is disabled) and returns the same bits; the chunk size is not part of the key. Per-condition models
    too."""
    monkeypatch.delenv(network_cache.ENV_VAR, raising=False)
    with network_cache.network_cache(tmp_path):
        first = _train(chunk=100)
        assert len(list(tmp_path.glob("*.npz"))) == 1
        _leaves_equal(first, trained)
        fresh_separate = _train(n=200, config=SEPARATE)
        with monkeypatch.context() as m:
            _no_training(m)
            _leaves_equal(_train(chunk=300), trained)
            _leaves_equal(_train(n=200, config=SEPARATE), fresh_separate)
    assert network_cache.network_cache_dir() is None  # off again outside the block


def test_a_different_key_n_config_source_or_schedule_misses(tmp_path):
    """Each ingredient of the result changes the entry's file; the chunk and the progress bar do not."""
    def path(key=0, n=1000, config=TINY, sources=SETTING.sources, schedule=SCHEDULE):
        description = network_cache.entry_description(jax.random.key(key), sources, schedule, n, config)
        return network_cache.entry_path(tmp_path, description)

    moved = (Gaussian(np.asarray(SETTING.sources[0].mean) + 1e-12, SETTING.sources[0].cov),) + SETTING.sources[1:]
    variants = [path(), path(key=1), path(n=999), path(config=TINY._replace(lr=TINY.lr * (1 + 1e-15))),
                path(config=TINY._replace(per_condition=True)), path(sources=moved),
                path(sources=SETTING.sources[::-1]), path(schedule=VPSchedule(beta_max=19.0))]
    assert len(set(variants)) == len(variants)
    assert path() == path()
    # End to end: another key trains a second entry (same shapes, so no new compilation).
    with network_cache.network_cache(tmp_path):
        _train(key=0)
        _train(key=1)
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_a_corrupt_entry_is_ignored_with_a_warning_and_rewritten(trained, tmp_path, monkeypatch):
    with network_cache.network_cache(tmp_path):
        _train()
        (entry,) = tmp_path.glob("*.npz")
        entry.write_bytes(entry.read_bytes()[:200])  # truncated, as by a full disk
        with pytest.warns(UserWarning, match="ignoring unreadable network cache entry"):
            again = _train()
        _leaves_equal(again, trained)
        with monkeypatch.context() as m:  # rewritten whole: now it loads
            _no_training(m)
            _leaves_equal(_train(), trained)
        # A readable entry of another run under this run's name (copied by hand, say) is refused too.
        _train(key=1)  # writes its own cache entry
        (other_entry,) = set(tmp_path.glob("*.npz")) - {entry}
        entry.write_bytes(other_entry.read_bytes())
        with pytest.warns(UserWarning, match="its description differs"):
            _leaves_equal(_train(), trained)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporaries left behind


def test_the_environment_variable_switches_the_cache_and_the_context_overrides_it(tmp_path, monkeypatch):
    monkeypatch.setenv(network_cache.ENV_VAR, str(tmp_path / "env"))
    assert network_cache.network_cache_dir() == tmp_path / "env"
    with network_cache.network_cache(tmp_path / "ctx"):
        assert network_cache.network_cache_dir() == tmp_path / "ctx"
        with network_cache.network_cache(None):
            assert network_cache.network_cache_dir() is None
    monkeypatch.delenv(network_cache.ENV_VAR)
    assert network_cache.network_cache_dir() is None


def test_the_report_trains_through_its_cache_folder(tmp_path, monkeypatch):
    """build_report runs every cell with the cache at ``<out>/cache/networks``, and leaves it off afterwards."""
    from report_helpers import network_cache_cell  # noqa: F401  (the compute function the registry names)

    from verify.report import build
    from verify.report.cache import atomic_write
    from verify.report.registry import Experiment, Registry

    monkeypatch.delenv(network_cache.ENV_VAR, raising=False)
    # The SymPy appendix is not what this test is about, and costs ~10 s of CPU.
    monkeypatch.setattr(build, "_derivations_appendix",
                        lambda cache, out: atomic_write(out / "appendix_derivations.tex", ""))
    registry = Registry([Experiment(name="cache_dir", title="the active network cache",
                                    compute="report_helpers:network_cache_cell", default=({"a": 1.0},),
                                    quick=({"a": 1.0},))])
    out = tmp_path / "out"
    result = build.build_report(registry, out, cache_version="test", progress=False, echo=lambda line: None)
    assert result.exit_code == 0
    frame = pd.read_csv(out / "data" / "cache_dir.csv")
    assert frame["folder"].tolist() == [str(out / "cache" / "networks")]
    assert network_cache.network_cache_dir() is None
