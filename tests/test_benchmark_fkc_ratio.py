"""``benchmarks/fkc_ratio.py``'s ``weights only`` candidate, the floor under every resampling scheme: it must run FKC's
potential and reweighting and move every particle exactly as the naive sampler does, or the floor would measure
something else. (A measuring tool: the test checks what it runs, not any timing.)"""

from pathlib import Path

import jax
import numpy as np
import pytest

from closed_form import VPSchedule, paper_setting
from verify import naive_sde_sample, source_scores
from verify.samplers import smc
from verify.samplers.model import check_run, run_kernel

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def fkc_ratio(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import fkc_ratio

    return fkc_ratio


def test_weights_only_moves_the_particles_as_the_naive_sampler_and_resets_the_weights(fkc_ratio):
    schedule = VPSchedule()
    comp = paper_setting("NFC_OOD").composition
    scores = source_scores(comp, schedule)
    n_swarms, k, steps = 6, 8, 20
    model = smc.fkc_model(scores, comp.weights, schedule, resampling=fkc_ratio._WeightsOnly(fkc_ratio.systematic))
    n_steps, stop_after, eps, start = check_run(schedule, steps, None, 1e-5, "standard", model.dim)
    result = run_kernel(jax.random.key(3), model, start, n_swarms, k, n_steps, stop_after, eps)
    naive = naive_sde_sample(jax.random.key(3), scores, comp.weights, schedule, n_swarms * k, n_steps=steps)
    # The same start draws and noise (flat indices), the same elementwise move: the same bits.
    np.testing.assert_array_equal(np.asarray(result.particles).reshape(n_swarms * k, -1), np.asarray(naive))
    np.testing.assert_allclose(np.asarray(result.log_weights), -np.log(k), rtol=1e-15)
    np.testing.assert_array_equal(np.asarray(result.n_resampling), steps)
    # The weights were computed: the increments moved log Ẑ away from 0 and the ESS was recorded at every step.
    assert np.all(np.abs(np.asarray(result.log_normalizer)) > 1e-3)
    assert np.asarray(result.ess).shape == (steps,) and np.all(np.asarray(result.ess) <= k + 1e-9)


def test_every_candidate_has_a_baseline(fkc_ratio):
    schedule = VPSchedule()
    comp = paper_setting("NFC_OOD").composition
    runs = fkc_ratio.candidates(source_scores(comp, schedule), comp.weights, schedule, 4, 8, 5)
    assert {"weights only", "no resampling"} <= set(runs)
    assert all(fkc_ratio.baseline(name) in runs for name in runs)
