r"""The geometric path ``π_t ∝ Π_i (q^i_t)^{w_i}`` against the diffused target ``Q_t``, exactly, along ``t``.

Naive composition follows the score of ``π_t``; the target's reverse diffusion needs the score of ``Q_t``. For
Gaussian sources both scores are affine, ``−A x + b`` (:meth:`closed_form.Composition.naive_field` and
:meth:`~closed_form.Composition.target_field`), so their gap is exact:

.. math:: E_{Q_t}\lVert Δ(x)\rVert^2 = \operatorname{tr}(Δ_A C_Q Δ_Aᵀ) + \lVert Δ_A m_Q − Δ_b\rVert^2,
          \qquad Δ(x) = −Δ_A x + Δ_b,\; Δ_A = A_π − A_Q,\; Δ_b = b_π − b_Q,

with ``Q_t = N(m_Q, C_Q)``. This is the inference-time error density that the Girsanov bound integrates
(``paper_notes.md``, "The Girsanov bound"). Under factorized conditionals it vanishes at every ``t``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from closed_form import VPSchedule, paper_setting


def path_target_gap(setting: str, n_times: int, t_min: float = 1e-4) -> pd.DataFrame:
    """For ``n_times`` times log-spaced in ``[t_min, T]``: the relative gap of the precisions of ``π_t`` and ``Q_t``,
    ``‖A_π − A_Q‖_F / ‖A_Q‖_F``, and the score gap ``E_{Q_t}‖∇log π_t − ∇log Q_t‖²`` (exact) with its Girsanov
    density ``½β(t)·E_{Q_t}‖…‖²``, on the paper's VP schedule."""
    s = paper_setting(setting)
    comp = s.composition
    schedule = VPSchedule()
    naive, target = comp.naive_field(schedule), comp.target_field(schedule)
    rows = []
    for t in np.geomspace(t_min, schedule.T, int(n_times)):
        a_pi, b_pi = (np.asarray(v) for v in naive(t))
        a_q, b_q = (np.asarray(v) for v in target(t))
        q_t = comp.noised_target(schedule, t)
        m_q, c_q = np.asarray(q_t.mean), np.asarray(q_t.cov)
        d_a, d_b = a_pi - a_q, b_pi - b_q
        score_gap = float(np.trace(d_a @ c_q @ d_a.T) + np.sum((d_a @ m_q - d_b) ** 2))
        rows.append({
            "setting": setting,
            "conditionals": "FC" if s.factorized else "NFC",
            "t": float(t),
            "precision_rel_gap": float(np.linalg.norm(d_a) / np.linalg.norm(a_q)),
            "score_gap_sq": score_gap,
            "girsanov_density": 0.5 * float(schedule.beta(t)) * score_gap,
        })
    return pd.DataFrame(rows)
