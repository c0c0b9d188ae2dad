"""verify.diagnose on a user's own composition: the 3-D composition Q ∝ A·B/base reproduces its target, the exact
naive SDE's KL and W2 and FKC's exact limit, and a particle count that its Monte Carlo check confirms; misspecification
in a user's units; mixtures by Monte Carlo; the command line on a settings file, alone and through the report. Also the
error messages and warnings a user meets on the way (laws' start dimension, importance resampling's ESS)."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest
from scipy import integrate, stats

from closed_form import Gaussian, GaussianMixture, VPSchedule, compose, euler_maruyama_law, ode_law, sde_law
from closed_form.composition import ImportanceResamplingWarning
from closed_form.errors import CatcompError, NotGaussianSettingError, ShapeMismatchError
from closed_form.settings_file import EXAMPLE, loads_settings

A = Gaussian(np.array([2.0, 0.0, 0.0]), np.diag([0.5, 2.0, 1.0]))
B = Gaussian(np.array([0.0, 2.0, 0.0]), np.diag([2.0, 0.5, 1.0]))
BASE = Gaussian(np.zeros(3), np.eye(3))


def composition():
    return compose([A, B, BASE], [1.0, 1.0, -1.0])


def _log_z_by_quadrature():
    """log ∫ A·B/base by 1-D quadrature per coordinate (the sources are diagonal): an independent route to log Z."""
    total = 0.0
    for j in range(3):
        def f(x):
            return (stats.norm.pdf(x, A.mean[j], math.sqrt(A.cov[j, j])) * stats.norm.pdf(x, B.mean[j],
                    math.sqrt(B.cov[j, j])) / stats.norm.pdf(x, 0.0, 1.0))
        total += math.log(integrate.quad(f, -30, 30, epsabs=0, epsrel=1e-13, limit=200)[0])
    return total


@pytest.fixture(scope="module")
def gaussian_diagnosis():
    from verify import diagnose

    return diagnose(composition(), n_steps=50, seed=0, tolerance=0.05, pilot_ks=(2, 8), pilot_swarms=500,
                    estimation=False)


def test_diagnose_reproduces_the_users_3d_composition(gaussian_diagnosis):
    """The numbers a user checked by hand: target N((8/3, 8/3, 0), diag(2/3, 2/3, 1)); the naive reverse SDE in
    continuous time, started at N(0, I) at T = 1 and stopped at t_min = 1e-4 (VP schedule β ∈ [0.1, 20]), has
    KL(Q‖law) = 0.04056 and W2 = 0.2096 (quoted to 4 digits)."""
    d = gaussian_diagnosis
    np.testing.assert_allclose(np.asarray(d.target.mean), [8 / 3, 8 / 3, 0.0], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.asarray(d.target.cov), np.diag([2 / 3, 2 / 3, 1.0]), rtol=1e-12, atol=1e-13)
    assert d.log_normalizer == pytest.approx(_log_z_by_quadrature(), rel=1e-10)
    sde = d.sampler("naive SDE (continuous)")
    assert abs(sde.kl - 0.04056) < 5e-6 and abs(sde.w2 - 0.2096) < 5e-5
    # FKC's exact limit on the grid: the law fkc_limit_law gives, whose log mass estimates log Z(π_eps) −
    # log Z(π_{T−eps}) up to the grid's discretization (50 steps); much closer to Q than the naive sampler
    fkc = d.sampler("FKC K → ∞ (50 steps)")
    assert fkc.kl < 0.1 * sde.kl
    assert abs(d.fkc_limit.log_mass - d.fkc_log_mass_expected) < 0.05
    assert d.fkc_log_mass_expected == pytest.approx(d.log_normalizer, abs=1e-3)
    # OOD measures: exact; the base N(0, I) has 2Σ − Σ_Q ≻ 0, so χ² is finite, and Q sits far outside it
    base = next(o for o in d.ood if o.label == "P_3")
    assert math.isfinite(base.log1p_chi2) and base.outside_hdr > 0.9 and base.outside_hdr_se == 0.0


def test_the_particle_count_meets_the_tolerance_in_a_monte_carlo_check(gaussian_diagnosis):
    """The smallest K with |c|/K ≤ tolerance, c fitted over pilot runs against the exact limit, is checked by a
    fresh FKC run at that K: every statistic's gap to the exact limit is within tolerance + t·SE."""
    d = gaussian_diagnosis
    for p in d.particles:
        assert p.limit_exact and p.k_low <= p.k <= p.k_high
        assert p.predicted_excess(p.k) <= d.tolerance < p.predicted_excess(max(p.k - 1, 1)) or p.k == 1
    check = d.check_particles(n_swarms=500)
    assert set(check["statistic"]) == {"second_moment", "log_z"} and (check["K"] == d.k_needed).all()
    assert check["within"].all(), check
    # a looser tolerance needs no more particles (same fits)
    assert all(a.k >= b.k for a, b in zip(d.particles, d.particles_needed(10 * d.tolerance)))


def test_renderings_say_the_same_numbers(gaussian_diagnosis, tmp_path):
    from report_helpers import compile_latex, require_latex

    d = gaussian_diagnosis
    frame = d.to_frame()
    kl = frame[(frame["item"] == "naive SDE (continuous)") & (frame["quantity"] == "KL(Q‖law)")]["value"].item()
    assert kl == d.sampler("naive SDE (continuous)").kl
    text = str(d)
    assert "0.04056" in text and "0.2096" in text and len(text.splitlines()) < 40
    assert "| naive SDE (continuous) | 0.04056 | 0.2096 |" in d.to_markdown()
    latex = d.to_latex()
    assert latex.count(r"\toprule") == 4 and "0.04056" in latex
    fig = d.figure()
    assert len(fig.axes) == 2
    require_latex()
    assert compile_latex(latex, tmp_path / "diag").returncode == 0


def test_misspecification_in_user_units_on_a_1d_composition():
    """A 1-D composition where everything is checkable by hand: KL(Q‖Q̂) of the composed fits, ε² the mean of the
    sources' DSM excesses, ratio KL/ε², and no cost without an error."""
    from verify import diagnose
    from closed_form.perturbations import misspecification_error

    p1, p2 = Gaussian(np.array([1.0]), np.array([[1.0]])), Gaussian(np.array([-0.5]), np.array([[2.0]]))
    d = diagnose(compose([p1, p2], [1.0, 1.0]), n_steps=20, particles=True, estimation=False)
    # at 20 steps FKC's weights are not integrable here: the diagnosis says so instead of failing
    assert math.isnan(d.sampler("FKC K → ∞ (20 steps)").kl) and "not integrable" in d.particles_note
    none = d.misspecified()
    assert none.kl == pytest.approx(0.0, abs=1e-14) and none.eps2 == pytest.approx(0.0, abs=1e-14)
    m = d.misspecified(cov_scale=[1.05, 1.0], mean_shift={"P_2": 0.1})
    # Q̂ by hand: precisions 1/1.05 + 1/2, mean (1/1.05·1 + (−0.5 + 0.1)/2)/precision; Q: 1.5, (1 − 0.25)/1.5
    lam, lam_hat = 1.5, 1 / 1.05 + 0.5
    mu, mu_hat = 0.75 / 1.5, (1 / 1.05 - 0.2) / lam_hat
    kl_hand = 0.5 * (lam_hat / lam - 1 - math.log(lam_hat / lam) + lam_hat * (mu - mu_hat) ** 2)
    assert m.kl == pytest.approx(kl_hand, rel=1e-10)
    s = VPSchedule()
    e1 = misspecification_error(p1, Gaussian(np.array([1.0]), np.array([[1.05]])), s).dsm_excess()
    e2 = misspecification_error(p2, Gaussian(np.array([-0.4]), np.array([[2.0]])), s).dsm_excess()
    assert m.eps2 == pytest.approx(0.5 * (e1 + e2), rel=1e-12)
    assert m.ratio == pytest.approx(m.kl / m.eps2) and m.lambda_max > 0
    assert list(m.per_source["cov_scale"]) == [1.05, 1.0] and m.per_source["mean_shift_norm"].tolist() == [0, 0.1]
    assert "ε²" in str(m)
    with pytest.raises(CatcompError, match="unknown source"):
        d.misspecified(mean_shift={"nope": 1.0})
    with pytest.raises(CatcompError, match="one per source"):
        d.misspecified(cov_scale=[1.0, 1.0, 1.0])


def test_a_mixture_setting_is_diagnosed_by_monte_carlo():
    """Mixture sources: OOD measures with standard errors (checked against cubature of Q²/P on a grid), samplers
    by sliced W2 with a floor, KL left empty with the reason, particles from a free a + c/K fit, and no
    misspecification helper (it needs Gaussian sources)."""
    from verify import diagnose

    setting = loads_settings(EXAMPLE)[1]
    d = diagnose(setting, n_steps=20, seed=1, particles=False, n_samples=500, n_runs=2)
    q = setting.composition.target
    g = np.linspace(-9, 9, 361)
    x = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    cell = (g[1] - g[0]) ** 2
    for o, p in zip(d.ood, setting.sources):
        exact = math.log(np.sum(np.exp(2 * np.asarray(q.logpdf(x)) - np.asarray(p.logpdf(x)))) * cell)
        assert abs(o.log1p_chi2 - exact) < 4 * o.log1p_chi2_se + 1e-3, (o, exact)
        assert 0 < o.outside_hdr < 1 and o.outside_hdr_se > 0
    assert all(math.isnan(s.kl) and "density" in s.note for s in d.samplers)
    floor = d.sampler("floor: two exact samples of Q")
    assert floor.w2 > 0 and floor.w2_se > 0
    with pytest.raises(NotGaussianSettingError, match="d.misspecified"):
        d.misspecified(cov_scale=1.05)
    assert "n/a" in str(d)


def test_diagnose_command_line_on_a_settings_file(tmp_path, capsys):
    from verify.__main__ import main

    path = tmp_path / "mine.toml"
    path.write_text(EXAMPLE)
    out = tmp_path / "out"
    code = main(["diagnose", str(path), "--out", str(out), "--n-steps", "20", "--no-particles", "--no-estimation",
                 "--only", "A_times_B_over_base"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Diagnosis of A_times_B_over_base" in printed and "KL(Q‖law)" in printed
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"A_times_B_over_base.{e}" for e in ("md", "pdf", "png", "tex")]
    assert "| A |" in (out / "A_times_B_over_base.md").read_text()
    path.write_text(EXAMPLE.replace("weights = [1, 1, -1]", "weights = [1, 1]"))
    assert main(["diagnose", str(path), "--out", str(out)]) == 2
    assert "setting[0].weights" in capsys.readouterr().err


def _run_report(tmp_path, text, only):
    from verify.__main__ import main

    path = tmp_path / "settings.toml"
    path.write_text(text)
    out = tmp_path / "report"
    code = main(["--settings", str(path), "--size", "quick", "--only", *only, "--jobs", "1", "--out", str(out),
                 "--no-progress"])
    return code, out


def test_the_report_runs_on_a_settings_file_with_the_users_names(tmp_path):
    import pandas as pd

    gaussian = EXAMPLE[:EXAMPLE.index('[[setting]]\nname = "two_blobs_product"')]
    code, out = _run_report(tmp_path, gaussian, ["gaussian_table"])
    assert code in (0, 1), (out / "summary.md").read_text()
    frame = pd.read_csv(out / "data" / "gaussian_table.csv")
    assert set(frame["setting"]) == {"A_times_B_over_base"}
    tables = "".join(p.read_text() for p in (out / "tables").glob("gaussian_table*.tex"))
    assert "A\\_times\\_B\\_over\\_base" in tables or "A_times_B_over_base" in tables
    assert "settings: A_times_B_over_base" in (out / "summary.md").read_text()


def test_experiments_that_do_not_apply_say_why_in_the_summary(tmp_path):
    mixture = EXAMPLE[EXAMPLE.index('[[setting]]\nname = "two_blobs_product"'):]
    code, out = _run_report(tmp_path, mixture, ["path_gap", "two_point"])
    summary = (out / "summary.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in summary.splitlines() if line.startswith("| `")}
    assert "not applicable" in rows["path_gap"] and "not applicable" in rows["two_point"]
    # the reason, naming the user's setting, is in the summary
    assert "two_blobs_product: needs Gaussian sources" in summary


# ------------------------------------------------------------------------------------------ friction fixes
@pytest.mark.parametrize("law", [sde_law, ode_law, euler_maruyama_law])
def test_a_start_of_the_wrong_dimension_says_what_is_valid(law):
    """It used to fail inside NumPy's matmul ('mismatch in its core dimension')."""
    comp = composition()
    for field in (comp.naive_field(VPSchedule()), lambda t: (np.eye(3), np.zeros(3))):
        with pytest.raises(ShapeMismatchError, match=r"dimension 2 .* dimension 3.*Gaussian.standard\(3\)"):
            law(field, VPSchedule(), Gaussian.standard(2))


def test_a_poor_importance_resampled_target_sample_warns_with_its_ess():
    a = GaussianMixture(np.array([0.5, 0.5]), np.array([[-2.0, 0], [2, 0]]), np.array([np.eye(2)] * 2))
    b = GaussianMixture(np.array([0.5, 0.5]), np.array([[0.0, -2], [0, 2]]), np.array([np.eye(2) * 0.5] * 2))
    base = GaussianMixture(np.array([0.5, 0.5]), np.array([[0.0, 0], [0.5, 0.5]]), np.array([np.eye(2) * 0.4] * 2))
    comp = compose([a, b, base], [1.0, 1.0, -0.9])
    with pytest.warns(ImportanceResamplingWarning, match=r"effective sample size of only \d+") as record:
        sample = comp.sample_target(jax.random.key(0), 2000)
    assert sample.method == "importance_resampling" and sample.ess < 2000
    assert f"{sample.ess:.0f}" in str(record[0].message)
    wide = GaussianMixture(np.array([0.5, 0.5]), np.array([[0.0, 0], [3, 3]]), np.array([np.eye(2) * 1.5] * 2))
    with warnings.catch_warnings():  # a good sample (ESS above its size) says nothing
        warnings.simplefilter("error", ImportanceResamplingWarning)
        assert compose([a, b, wide], [1.0, 1.0, -0.5]).sample_target(jax.random.key(1), 200).ess > 200


def test_import_verify_stays_light_and_exposes_diagnose():
    code = ("import sys, verify\n"
            "assert 'verify.diagnosis' not in sys.modules and 'verify.report.tables' not in sys.modules\n"
            "from verify import diagnose, Diagnosis\n"
            "assert diagnose.__module__ == 'verify.diagnosis' and 'diagnose' in verify.__all__\n")
    subprocess.run([sys.executable, "-c", code], check=True)
