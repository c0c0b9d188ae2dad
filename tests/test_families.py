"""The eight Gaussian families and their exact sensitivity metric, against 2-D cubature.

Independent route: ``log ∫ Q²/P_i`` by adaptive cubature of ``exp(2 log Q − log P_i)`` over a box placed from the
integrand's own finite-difference Hessian (a quadratic exponent, so the Hessian is exact up to rounding); where that
Hessian has a non-negative eigenvalue the integral diverges and the closed form must say ``inf``.
"""

import numpy as np
import pytest

from closed_form import FAMILY_NAMES, exact_log_ress_inverse, family_config, family_configs
from closed_form.errors import CatcompError
from closed_form.quadrature import integrate_density


def _np_logpdf(g):
    mean, cov = np.asarray(g.mean), np.asarray(g.cov)
    prec, (_, logdet) = np.linalg.inv(cov), np.linalg.slogdet(cov)
    return lambda x: -0.5 * np.einsum("ni,ij,nj->n", x - mean, prec, x - mean) - 0.5 * logdet - np.log(2 * np.pi)


def _log_integrand(q, p):
    lq, lp = _np_logpdf(q), _np_logpdf(p)
    return lambda x: 2.0 * lq(x) - lp(x)


def _hessian_and_center(logf, x0, h=0.5):
    """Gradient and Hessian of a quadratic ``logf`` at ``x0`` by central differences (exact for quadratics up to
    rounding); returns ``(H, center)`` with ``center = x0 − H⁻¹ g``."""
    e = np.eye(2) * h
    pts = [x0 + a + b for a in (-e[0], 0 * e[0], e[0]) for b in (-e[1], 0 * e[1], e[1])]
    v = np.asarray(logf(np.array(pts))).reshape(3, 3)
    g = np.array([(v[2, 1] - v[0, 1]) / (2 * h), (v[1, 2] - v[1, 0]) / (2 * h)])
    hxx = (v[2, 1] - 2 * v[1, 1] + v[0, 1]) / h**2
    hyy = (v[1, 2] - 2 * v[1, 1] + v[1, 0]) / h**2
    hxy = (v[2, 2] - v[2, 0] - v[0, 2] + v[0, 0]) / (4 * h * h)
    hess = np.array([[hxx, hxy], [hxy, hyy]])
    return hess, x0 - np.linalg.solve(hess, g) if np.all(np.linalg.eigvalsh(hess) < 0) else None


def test_families_have_twenty_proper_configurations_each():
    for name in FAMILY_NAMES:
        configs = family_configs(name)
        assert len(configs) == 20
        assert [c.index for c in configs] == list(range(20))
        for c in configs:
            np.testing.assert_array_equal(np.asarray(c.sources[2].cov), np.eye(2))  # P_0 = N(0, I)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_exact_metric_against_cubature(name):
    # Three configurations per family (ends and middle): finite values against cubature, infinite ones against a
    # non-negative curvature of the integrand.
    finite = 0
    for index in (0, 9, 19):
        config = family_config(name, index)
        q = config.composition.target
        exact = exact_log_ress_inverse(config.composition)
        for p, value in zip(config.sources, exact):
            logf = _log_integrand(q, p)
            hess, center = _hessian_and_center(logf, np.asarray(q.mean))
            if center is None:
                assert np.isinf(value), (name, index, value, np.linalg.eigvalsh(hess))
                continue
            cov = np.linalg.inv(-hess)
            sd = np.sqrt(np.diag(cov))
            log_z, _, _ = integrate_density(logf, center - 12 * sd, center + 12 * sd, rtol=1e-11)
            assert value == pytest.approx(log_z, abs=1e-8 * max(1.0, abs(log_z))), (name, index)
            finite += 1
    assert finite > 0 or name == "anisotropic_r_gt_2"  # that family is infinite throughout


def test_unknown_family_and_index_raise():
    with pytest.raises(CatcompError, match="valid names"):
        family_configs("isotropic")
    with pytest.raises(CatcompError, match=r"\[0, 19\]"):
        family_config("anisotropic", 20)
