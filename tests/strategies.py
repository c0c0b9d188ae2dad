"""Hypothesis strategies shared by the tests: random means, SPD covariances with controlled condition numbers."""

import numpy as np
from hypothesis import strategies as st


def spd_matrix(rng: np.random.Generator, d: int, log10_cond: float, scale: float = 1.0) -> np.ndarray:
    """A random symmetric positive-definite ``d×d`` matrix with condition number ``10**log10_cond``."""
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    if d == 1:
        eig = np.array([scale])
    else:
        eig = scale * np.logspace(-log10_cond / 2, log10_cond / 2, d)
        rng.shuffle(eig)
    m = (q * eig) @ q.T
    return 0.5 * (m + m.T)


@st.composite
def gaussians_params(draw, min_dim=1, max_dim=5, max_log10_cond=6.0):
    """``(mean, cov, rng)`` with dimension in ``[min_dim, max_dim]`` and condition number up to ``10**max_log10_cond``."""
    d = draw(st.integers(min_dim, max_dim))
    seed = draw(st.integers(0, 2**32 - 1))
    log10_cond = draw(st.floats(0.0, max_log10_cond))
    scale = draw(st.floats(0.1, 10.0))
    rng = np.random.default_rng(seed)
    return rng.normal(size=d) * 2.0, spd_matrix(rng, d, log10_cond, scale), rng
