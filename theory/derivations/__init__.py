"""The theory's closed forms derived by SymPy from their definitions (pure SymPy; no JAX).

Each function returns a :class:`Derivation`: SymPy expressions, the assumptions they need, and the equations to
typeset. Results are cached (``functools.lru_cache``), so a derivation reused by another one is computed once.

* :func:`forward_vp` — ``α_t``, ``σ_t²`` (linear and cosine schedules), diffused Gaussian log density and score;
* :func:`gaussian_power_products` — product of powers of Gaussians, log normalizer, properness;
* :func:`path_vs_target` — geometric path ``π_t`` against the diffused target ``Q_t``;
* :func:`fkc_weight` — the Feynman–Kac corrector's log-weight rate from the Fokker–Planck equations, and
  :func:`fkc_affine_potential` the same rate for affine scores as the potential ``(G, h, c)`` of the moment ODEs;
* :func:`gaussian_moment_odes` — moment / Riccati ODEs of Gaussian laws (reverse SDE, flow ODE, Feynman–Kac), with
  :func:`fk_moment_forms` their matrix forms in any dimension and :func:`fk_moment_rhs` their NumPy evaluation;
* :func:`gaussian_divergences` — KL, ``1 + χ²``, ``W₂`` per direction and the Girsanov integrand.

:func:`appendix_latex` and :func:`notes_markdown` typeset them for the report and ``paper_notes.md``.
"""

from theory.derivations.base import Derivation
from theory.derivations.divergences import gaussian_divergences
from theory.derivations.fkc_weight import fkc_affine_potential, fkc_weight
from theory.derivations.forward import forward_vp
from theory.derivations.moment_odes import fk_moment_forms, fk_moment_rhs, gaussian_moment_odes
from theory.derivations.path_gap import path_vs_target
from theory.derivations.products import gaussian_power_products
from theory.derivations.render import all_derivations, appendix_latex, notes_markdown, update_notes

__all__ = [
    "Derivation",
    "all_derivations",
    "appendix_latex",
    "fk_moment_forms",
    "fkc_affine_potential",
    "fk_moment_rhs",
    "fkc_weight",
    "forward_vp",
    "gaussian_divergences",
    "gaussian_moment_odes",
    "gaussian_power_products",
    "notes_markdown",
    "path_vs_target",
    "update_notes",
]
