"""``fkc_sample(variant="authors")`` against a plain step-by-step re-implementation of the authors' sampler.

The re-implementation shares only the random streams with the sampler (the same key splitting, start draw, noise
method and resampler), so that both consume identical randomness; the step logic — move with the carried scores,
rate ``g`` at the new point and ``t_{k+1}``, the clip on the rate, the weight update, resampling of points and
scores — is written out here in NumPy.
"""

import math

import jax
import numpy as np
import pytest

from closed_form import VPSchedule, paper_setting
from closed_form.errors import CatcompError
from verify import MALA, fkc_sample, source_scores
from verify.samplers.discretization import draw_start, split_keys, time_steps
from verify.samplers.noise import standard_normal
from verify.samplers.resampling import get_resampler

SCHEDULE = VPSchedule()


def _authors_reference(key, comp, n_swarms, n_particles, n_steps, stop_after, g_clip, noise="threefry"):
    scores = source_scores(comp, SCHEDULE)
    weights = [float(w) for w in comp.weights]
    d = comp.dim
    keys = split_keys(key)
    resample = get_resampler("systematic")
    t, h = time_steps(SCHEDULE, n_steps, 1e-5)
    x = np.asarray(draw_start(keys.start, "standard", (n_swarms, n_particles), d))
    s_comp = sum(w * np.asarray(s(x, t[0])) for w, s in zip(weights, scores))
    log_w = np.full((n_swarms, n_particles), -math.log(n_particles))
    log_z = np.zeros(n_swarms)
    for k in range(stop_after):
        beta = float(SCHEDULE.beta(t[k]))
        z = np.asarray(standard_normal(jax.random.fold_in(keys.noise, k), x.shape, noise))
        x = x + h[k] * (0.5 * beta * x + beta * s_comp) + math.sqrt(beta * h[k]) * z
        t_next = t[k] - h[k]
        beta_next = float(SCHEDULE.beta(t_next))
        src = [np.asarray(s(x, t_next)) for s in scores]
        s_comp = sum(w * si for w, si in zip(weights, src))
        g = 0.5 * beta_next * ((1.0 - sum(weights)) * d + np.sum(s_comp**2, -1)
                               - sum(w * np.sum(si**2, -1) for w, si in zip(weights, src)))
        if g_clip is not None:
            g = np.clip(g, -g_clip, g_clip)
        log_w = log_w + h[k] * g
        log_total = np.logaddexp.reduce(log_w, axis=-1)
        log_z = log_z + log_total
        w_norm = np.exp(log_w - log_total[:, None])
        idx = np.asarray(resample(jax.random.fold_in(keys.resample, k), w_norm, n_particles))
        x = np.take_along_axis(x, idx[..., None], axis=1)
        s_comp = np.take_along_axis(s_comp, idx[..., None], axis=1)
        log_w = np.full_like(log_w, -math.log(n_particles))
    return x, log_z


@pytest.mark.parametrize("g_clip", [None, 0.5])
def test_authors_variant_matches_a_plain_reimplementation(key, g_clip):
    # NFC_OOD: the composed rate is far from zero late in the run, so g_clip = 0.5 clips many particle-steps.
    comp = paper_setting("NFC_OOD").composition
    scores = source_scores(comp, SCHEDULE)
    out = fkc_sample(key, scores, comp.weights, SCHEDULE, 6, 4, n_steps=25, stop_after=25, noise="threefry",
                     variant="authors", g_clip=g_clip)
    x_ref, log_z_ref = _authors_reference(key, comp, 6, 4, 25, 25, g_clip)
    np.testing.assert_allclose(np.asarray(out.particles), x_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(out.log_normalizer), log_z_ref, rtol=1e-10, atol=1e-12)


def test_clip_changes_the_run(key):
    # The comparison above has content only if the clip acts: with g_clip = 0.5 the normalizer differs.
    comp = paper_setting("NFC_OOD").composition
    _, clipped = _authors_reference(key, comp, 6, 4, 25, 25, 0.5)
    _, free = _authors_reference(key, comp, 6, 4, 25, 25, None)
    assert np.max(np.abs(clipped - free)) > 1e-3


def test_authors_variant_step_by_step(key):
    # stop_after: the state after each of the first steps agrees too.
    comp = paper_setting("NFC_ID").composition
    scores = source_scores(comp, SCHEDULE)
    for m in (1, 4):
        out = fkc_sample(key, scores, comp.weights, SCHEDULE, 3, 5, n_steps=20, stop_after=m, noise="threefry",
                         variant="authors")
        x_ref, log_z_ref = _authors_reference(key, comp, 3, 5, 20, m, 15.0)
        np.testing.assert_allclose(np.asarray(out.particles), x_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(out.log_normalizer), log_z_ref, rtol=1e-10, atol=1e-12)


def test_variant_arguments_are_validated():
    comp = paper_setting("FC_ID").composition
    scores = source_scores(comp, SCHEDULE)
    k = jax.random.key(0)
    with pytest.raises(CatcompError, match="valid variants"):
        fkc_sample(k, scores, comp.weights, SCHEDULE, 2, 2, n_steps=3, variant="paper")
    with pytest.raises(CatcompError, match="weight_clip"):
        fkc_sample(k, scores, comp.weights, SCHEDULE, 2, 2, n_steps=3, g_clip=15.0)
    with pytest.raises(CatcompError, match="weight_clip must be None"):
        fkc_sample(k, scores, comp.weights, SCHEDULE, 2, 2, n_steps=3, variant="authors", weight_clip=1.0)
    with pytest.raises(CatcompError, match="corrector"):
        fkc_sample(k, scores, comp.weights, SCHEDULE, 2, 2, n_steps=3, variant="authors", corrector=MALA(0.01))
    with pytest.raises(CatcompError, match="positive"):
        fkc_sample(k, scores, comp.weights, SCHEDULE, 2, 2, n_steps=3, variant="authors", g_clip=-1.0)
