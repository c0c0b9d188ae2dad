"""The learned-score sweep (naive and FKC × K with retrained networks): its frame, its floor and naive rows recomputed
from the documented keys, reproducibility, input errors, the registration's paper size, the stall finding on
hand-built frames both ways, and its tables and heat map."""

from __future__ import annotations

import math

import jax
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from report_helpers import compile_latex, require_latex
from scipy.stats import t as student_t

from closed_form import SETTING_NAMES, VPSchedule, paper_setting
from closed_form.errors import CatcompError
from verify.experiments.learned_sweep import (
    ANALYTICAL,
    FLOOR_K,
    check_training_size,
    final_loss,
    learned_sweep,
    run_keys,
)
from verify.analysis.metrics import mmd2_unbiased, sliced_w2
from verify.analysis.score_errors import network_config
from verify.experiments import REGISTRY
from verify.experiments import learned_sweep as catalog
from verify.report.claims import FAILS, HOLDS, INCONCLUSIVE, NOT_APPLICABLE
from verify.report.figures import FigureError, heatmap
from verify.report.tables import format_mean_se, render_table
from verify.samplers.naive import naive_sde_sample
from verify.samplers.networks import NetworkConfig
from verify.samplers.scores import source_scores
from verify.samplers.smc import fkc_sample

#: A network small enough that training compiles and runs in seconds (one hidden layer of 8 units, 20 steps).
TINY = NetworkConfig(width=8, depth=1, iterations=20, lr=1e-2, batch=30)
SIZES = dict(ks=[1, 3], n_runs=2, n_swarms=24, n_steps=6, n_proj=16)


@pytest.fixture(scope="module")
def learned():
    return learned_sweep("NFC_ID", 40, config=TINY, seed=5, **SIZES)


@pytest.fixture(scope="module")
def analytical():
    return learned_sweep("NFC_ID", "analytical", config=TINY, seed=5, **SIZES)


def test_frame_has_one_row_per_run_and_k_plus_a_floor_row_per_run(learned, analytical):
    for frame, n in ((learned, 40), (analytical, ANALYTICAL)):
        assert list(frame.columns) == ["setting", "n", "K", "run", "sw2", "mmd2", "train_loss", "n_swarms", "n_steps",
                                       "conditionals", "regime"]
        assert (frame["conditionals"] == "NFC").all() and (frame["regime"] == "ID").all()
        assert len(frame) == SIZES["n_runs"] * (len(SIZES["ks"]) + 1)
        assert sorted(map(tuple, frame[["run", "K"]].to_numpy().tolist())) == [
            (r, k) for r in range(2) for k in sorted([FLOOR_K, 1, 3])]
        assert (frame["setting"] == "NFC_ID").all() and (frame["n"] == n).all()
        assert np.isfinite(frame[["sw2", "mmd2"]].to_numpy()).all() and (frame["sw2"] >= 0).all()
    # A training loss for every sampler row of a trained network; none for exact scores or the floor.
    sampled = learned["K"] != FLOOR_K
    assert np.isfinite(learned.loc[sampled, "train_loss"]).all()
    assert learned.loc[~sampled, "train_loss"].isna().all() and analytical["train_loss"].isna().all()
    # Each run retrains on a new pool from a new initialization: the losses differ between runs.
    per_run = learned[sampled].groupby("run")["train_loss"].first()
    assert per_run.nunique() == 2


def test_floor_and_naive_rows_are_what_they_claim(analytical):
    """Recomputed from the documented keys: the floor is two exact target samples, K = 1 is naive composition with
    exact scores, and FKC with one particle per swarm gives the very same samples."""
    s, schedule = paper_setting("NFC_ID"), VPSchedule()
    exact = source_scores(s.composition, schedule)
    n, n_proj = SIZES["n_swarms"], SIZES["n_proj"]
    for r in range(SIZES["n_runs"]):
        keys = run_keys(5, r)
        ref = s.composition.sample_target(keys.reference, n).samples
        rows = analytical[analytical["run"] == r].set_index("K")
        floor = s.composition.sample_target(keys.floor, n).samples
        assert rows.loc[FLOOR_K, "sw2"] == sliced_w2(floor, ref, keys.projections, n_proj)
        assert rows.loc[FLOOR_K, "mmd2"] == mmd2_unbiased(floor, ref)
        k1 = jax.random.fold_in(keys.sampling, 1)
        naive = naive_sde_sample(k1, exact, s.weights, schedule, n, n_steps=SIZES["n_steps"])
        fkc1 = fkc_sample(k1, exact, s.weights, schedule, n, 1, n_steps=SIZES["n_steps"]).samples
        np.testing.assert_array_equal(np.asarray(naive), np.asarray(fkc1))
        assert rows.loc[1, "sw2"] == sliced_w2(naive, ref, keys.projections, n_proj)
        assert rows.loc[1, "mmd2"] == mmd2_unbiased(naive, ref)


def test_same_seed_same_frame_other_seed_other_frame(learned):
    pd.testing.assert_frame_equal(learned_sweep("NFC_ID", 40, config=TINY, seed=5, **SIZES), learned)
    other = learned_sweep("NFC_ID", 40, config=TINY, seed=6, **SIZES)
    assert not np.array_equal(other["sw2"].to_numpy(), learned["sw2"].to_numpy())


def test_final_loss_is_the_mean_of_the_last_tenth():
    assert final_loss(np.arange(20.0)) == 18.5  # steps 18 and 19
    assert final_loss([3.0]) == 3.0
    assert final_loss(np.arange(11.0)) == 9.5  # ceil(1.1) = 2 steps


@pytest.mark.parametrize("kwargs, match", [
    (dict(setting="NFC"), "valid names"),
    (dict(n=-5), "n \\(0 or 'analytical'"),
    (dict(n="exact"), "'analytical'"),
    (dict(n=2.5), "integer"),
    (dict(ks=[]), "at least one"),
    (dict(ks=[0, 4]), "particle count K"),
    (dict(ks=[4, 4]), "distinct"),
    (dict(ks=4), "sequence"),
    (dict(n_runs=1), "two runs"),
    (dict(n_swarms=1), "two draws"),
    (dict(n_steps=0), "n_steps"),
    (dict(n_proj=0), "n_proj"),
    (dict(config="huge"), "default, small, paper"),
    (dict(n=10, config=NetworkConfig(batch=2)), "at least their number"),
    (dict(n=10, config=5), "must be a NetworkConfig"),
])
def test_invalid_inputs_raise_catcomp_errors_saying_what_is_valid(kwargs, match):
    args = {"setting": "FC_ID", "n": 10, "config": TINY, "seed": 0, **SIZES, **kwargs}
    with pytest.raises(CatcompError, match=match):
        learned_sweep(**args)


@given(st.integers(max_value=-1))
def test_negative_training_sizes_are_refused(n):
    with pytest.raises(CatcompError, match="'analytical'"):
        check_training_size(n)


def test_paper_grid_is_the_authors_configuration():
    experiment = REGISTRY["learned_sweep"]
    cells = experiment.cells("paper")
    assert {(c["setting"], c["n"]) for c in cells} == {(s, n) for s in SETTING_NAMES for n in (100, 1000, 10_000, 0)}
    assert len(cells) == 24
    for cell in cells:
        assert cell["ks"] == [1, 4, 16, 64, 256]
        assert (cell["n_runs"], cell["n_swarms"], cell["n_steps"], cell["n_proj"]) == (30, 5000, 500, 2000)
        assert network_config(cell["config"]) == NetworkConfig.paper()
    assert NetworkConfig.paper() == NetworkConfig(width=512, depth=4, iterations=20_000, lr=2e-4, batch=512)
    # The default covers the same settings and columns at reduced sizes.
    assert {(c["setting"], c["n"]) for c in experiment.cells("default")} == {(c["setting"], c["n"]) for c in cells}


# ------------------------------------------------------------------------------------------------ the finding
def _hand_frame(setting: str, shift: float, runs: int = 5, k: int = 16, n: int = 1000) -> pd.DataFrame:
    """Runs whose analytical MMD² are ``a_i`` and learned ones ``a_i + shift`` (equal variances), plus a smaller-K and
    a smaller-n row and floor rows the test must ignore."""
    a = np.array([0.010, 0.013, 0.007, 0.012, 0.008])[:runs]
    rows = []
    for r in range(runs):
        rows += [{"setting": setting, "n": 0, "K": k, "run": r, "mmd2": a[r], "sw2": 0.3 + a[r]},
                 {"setting": setting, "n": n, "K": k, "run": r, "mmd2": a[r] + shift, "sw2": 0.3 + a[r] + shift},
                 {"setting": setting, "n": 10, "K": k, "run": r, "mmd2": 5.0, "sw2": 5.0},
                 {"setting": setting, "n": n, "K": 1, "run": r, "mmd2": 9.0, "sw2": 9.0},
                 {"setting": setting, "n": n, "K": FLOOR_K, "run": r, "mmd2": 7.0, "sw2": 7.0}]
    return pd.DataFrame(rows)


def _threshold(runs: int = 5) -> float:
    """k·SE for equal variances and run counts: Welch's ν = 2(runs − 1), SE = √2·sd/√runs (computed here again)."""
    a = np.array([0.010, 0.013, 0.007, 0.012, 0.008])[:runs]
    return float(student_t.isf(catalog.LEARNED_STALL_ALPHA, 2 * (runs - 1)) * math.sqrt(2 / runs) * a.std(ddof=1))


def test_stall_test_uses_the_welch_standard_error_of_the_largest_k_and_n():
    threshold = _threshold()
    test = catalog.learned_stall_test(_hand_frame("FC_OOD", 1.01 * threshold), "FC_OOD")
    assert (test["K"], test["n"], test["stalls"]) == (16, 1000, True)
    assert test["dof"] == pytest.approx(8.0, rel=1e-12)
    assert test["k"] * test["se"] == pytest.approx(threshold, rel=1e-12)
    assert catalog.learned_stall_test(_hand_frame("FC_OOD", 0.99 * threshold), "FC_OOD")["stalls"] is False
    # Better than analytical is no stall (one-sided).
    assert catalog.learned_stall_test(_hand_frame("FC_OOD", -10 * threshold), "FC_OOD")["stalls"] is False
    # "Below the stated size": difference + t·SE < size.
    size = catalog.LEARNED_STALL_SIZE
    assert catalog.learned_stall_test(_hand_frame("FC_OOD", size - 1.01 * threshold), "FC_OOD")["below_size"]
    assert not catalog.learned_stall_test(_hand_frame("FC_OOD", size - 0.99 * threshold), "FC_OOD")["below_size"]


def _check(ood: bool):
    checks = REGISTRY["learned_sweep"].checks
    assert len(checks) == 2 and not any(c.asserted for c in checks)
    return next(c for c in checks if c.statement.startswith("OOD" if ood else "ID"))


def _spread_frame(setting: str, shift: float, spread: float) -> pd.DataFrame:
    """Three runs at K = 16: analytical MMD² 0.01 in each, learned 0.01 + shift + spread·(−1, 0, 1), so the Welch
    difference is ``shift`` with standard error ``spread/√3`` and 2 degrees of freedom; plus rows the test must
    ignore (a smaller n, naive K = 1, the floor)."""
    rows = []
    for r, u in enumerate((-1.0, 0.0, 1.0)):
        rows += [{"setting": setting, "n": 0, "K": 16, "run": r, "mmd2": 0.01, "sw2": 0.3},
                 {"setting": setting, "n": 1000, "K": 16, "run": r, "mmd2": 0.01 + shift + spread * u, "sw2": 0.3},
                 {"setting": setting, "n": 10, "K": 16, "run": r, "mmd2": 5.0, "sw2": 5.0},
                 {"setting": setting, "n": 1000, "K": 1, "run": r, "mmd2": 9.0, "sw2": 9.0},
                 {"setting": setting, "n": 1000, "K": FLOOR_K, "run": r, "mmd2": 7.0, "sw2": 7.0}]
    return pd.DataFrame(rows)


#: (shift, spread) of a resolved stall (0.2 ± 0.006, margin 4.30·SE = 0.025), of a difference resolved below the
#: stated size 0.05 (0 ± 0.006) and of one resolving neither (0.02 ± 0.029, margin 0.12).
STALL, LEVEL, NOISY = (0.2, 0.01), (0.0, 0.01), (0.02, 0.05)


@pytest.mark.parametrize("setting, ood", [("NFC_ID", False), ("NFC_OOD", True), ("GMM_OOD", True),
                                          ("GMM_ID", False)])
def test_stall_finding_comes_out_holds_fails_or_inconclusive(setting, ood):
    assert catalog.LEARNED_STALL_SIZE == 0.05  # the sizes above are chosen around it
    check = _check(ood)
    stall, level, noisy = (check.evaluate(_spread_frame(setting, *x)) for x in (STALL, LEVEL, NOISY))
    assert (stall.status, level.status) == ((HOLDS, FAILS) if ood else (FAILS, HOLDS))
    assert noisy.status == INCONCLUSIVE and noisy.judged == (setting,)
    assert "runs" in noisy.note  # what would resolve it
    assert "not in this run" in noisy.note  # the paper's settings of this regime that were not judged
    assert level.numbers[f"{setting}: difference"] == pytest.approx(0.0, abs=1e-15)
    assert level.numbers[f"{setting}: Welch degrees of freedom"] == pytest.approx(2.0)
    # The other regime's check has nothing to judge in a frame of this setting alone.
    assert _check(not ood).evaluate(_spread_frame(setting, *LEVEL)).status == NOT_APPLICABLE


def test_stall_finding_fails_in_one_setting_only_at_the_bonferroni_level():
    """A stall resolved at α = 0.025 (margin t_(0.975, 2)·SE = 4.30·0.02) but not at α/3 (7.65·0.02), and not
    resolved below 0.05: alone, the ID finding fails; among three ID settings it is inconclusive."""
    hair = (0.12, 0.02 * math.sqrt(3))
    assert student_t.isf(0.025, 2) * 0.02 < 0.12 < student_t.isf(0.025 / 3, 2) * 0.02
    assert _check(False).evaluate(_spread_frame("GMM_ID", *hair)).status == FAILS
    frame = pd.concat([_spread_frame("FC_ID", *LEVEL), _spread_frame("NFC_ID", *LEVEL),
                       _spread_frame("GMM_ID", *hair)], ignore_index=True)
    out = _check(False).evaluate(frame)
    assert out.status == INCONCLUSIVE and set(out.judged) == {"FC_ID", "NFC_ID", "GMM_ID"}
    assert "not in this run" not in out.note


def test_stall_finding_uses_the_regime_column_and_skips_unknown_labels():
    frame = _spread_frame("mine", *LEVEL).assign(regime="unknown")
    out = _check(False).evaluate(frame)
    assert out.status == NOT_APPLICABLE and "unknown" in out.note
    assert _check(False).evaluate(frame.assign(regime="ID")).status == HOLDS
    assert _check(True).evaluate(frame.assign(regime="OOD")).status == FAILS


def test_finding_without_an_analytical_column_is_not_applicable():
    frame = _hand_frame("FC_ID", 0.0)
    assert _check(False).evaluate(frame[frame["n"] > 0]).status == NOT_APPLICABLE


# ------------------------------------------------------------------------------------------------ tables, figure
@pytest.fixture(scope="module")
def saved_csv(tmp_path_factory, learned, analytical):
    frame = catalog._learned_derived(pd.concat([learned, analytical], ignore_index=True))
    path = tmp_path_factory.mktemp("learned") / "learned_sweep.csv"
    frame.to_csv(path, index=False)
    return path


def test_tables_have_the_papers_layout_and_compile(saved_csv, learned, tmp_path):
    specs = REGISTRY["learned_sweep"].tables
    latex = {stem: text for spec in specs for stem, text in render_table(spec, saved_csv).items()}
    assert sorted(latex) == sorted(f"learned_sweep_{m}_NFC_ID" for m in ("sw2", "mmd2", "sw2_sd", "mmd2_sd"))
    table = latex["learned_sweep_sw2_NFC_ID"]
    assert r"K & 40 & analytical \\" in table
    body = table.split(r"\midrule")[1]
    assert [line.split(" & ")[0].strip() for line in body.strip().splitlines()[:3]] == ["1", "3", "floor"]
    # The floor cell of n = 40: mean ± SE in one table, mean ± SD (√runs larger) in the other.
    floor = learned[learned["K"] == FLOOR_K]["sw2"]
    sd = floor.std(ddof=1)
    def floor_cell(text):  # the first column (n = 40) of the floor row
        return text.split(r"\midrule")[1].split("floor & ")[1].split(" & ")[0]

    assert floor_cell(table) == format_mean_se(floor.mean(), sd / math.sqrt(2))
    assert floor_cell(latex["learned_sweep_sw2_sd_NFC_ID"]) == format_mean_se(floor.mean(), sd)
    require_latex()
    for stem in ("learned_sweep_sw2_NFC_ID", "learned_sweep_mmd2_sd_NFC_ID"):
        proc = compile_latex(latex[stem], tmp_path / stem)
        assert proc.returncode == 0, proc.stdout[-2000:]


def test_heat_map_draws_the_floor_as_the_last_row(saved_csv):
    frame = pd.read_csv(saved_csv)
    fig = REGISTRY["learned_sweep"].figures[0].draw(frame)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "3", "floor"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["40", "analytical"]
    means = frame.groupby(["K_label", "n_label"])["sw2"].mean()
    assert ax.texts[-1].get_text() == format(means["floor", "analytical"], ".2g")  # row-major, floor row last


def test_heat_map_refuses_missing_cells_and_nonpositive_log_values():
    frame = pd.DataFrame({"K": ["1", "1", "4"], "n": ["a", "b", "a"], "v": [1.0, 2.0, 3.0]})
    with pytest.raises(FigureError, match="no rows"):
        heatmap(frame, x="n", y="K", value="v")
    frame = pd.DataFrame({"K": ["1", "4"], "n": ["a", "a"], "v": [0.0, 3.0]})
    with pytest.raises(FigureError, match="≤ 0"):
        heatmap(frame, x="n", y="K", value="v", log=True)
    assert len(heatmap(frame, x="n", y="K", value="v").axes) == 2  # the panel and its colour bar
