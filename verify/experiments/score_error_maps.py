r"""Exact error maps of trained networks on a Gaussian setting: the authors' ε-predictor trained on ``n`` exact draws
per source, its score error per source and time under ``q^i_t``, ``Q_t`` and ``π_t``, and its DSM excesses
(:func:`verify.analysis.score_errors.score_error_map` says what each number is)."""

from __future__ import annotations

import pandas as pd

from verify.analysis.score_errors import learned_error_maps
from verify.report.registry import Experiment, gaussian_only, grid
from verify.report.tables import Column, TableSpec


def score_error_maps(setting, sizes=(100, 10_000), seed: int | None = None, config="default",
                     per_condition: bool = False, n_mc: int = 2000, n_nodes: int = 12, schedule=None,
                     progress: bool = False) -> pd.DataFrame:
    r"""Train the ε-predictor on pools of ``n ∈ sizes`` exact draws per source of the Gaussian setting ``setting`` (a
    :class:`closed_form.Setting` or a paper setting's name) and return each network's error map, with columns
    ``setting`` and ``n`` in front (:func:`verify.analysis.score_errors.learned_error_maps`, which says how ``seed``
    derives the training and map keys). ``seed`` is required: the report passes each cell's.

    Cost (NFC_OOD, two sizes, 12 nodes × 2000 draws): 31 s wall on this project's shared 2-core machine at load
    average 6, about half of it compiling.

    Raises
    ------
    NotGaussianSettingError
        For a setting with a Gaussian-mixture source (no closed-form ``Q_t``).
    CatcompError
        For a missing seed or an unknown configuration.
    """
    if seed is None:
        from closed_form.errors import CatcompError

        raise CatcompError("score_error_maps needs a seed (an integer); the report passes each cell's own.")
    return learned_error_maps(setting, sizes, seed, config, per_condition, n_mc, n_nodes, schedule, progress)


# ---------------------------------------------------------------------------------------------- registration
_SCORE_ERROR_MEASURES = {("dsm_excess", "train"): "ε²(q_i)", ("dsm_excess", "target"): "ε²(Q)",
                         ("dsm_excess", "path"): "ε²(π)", ("ratio", "target"): "ε²(Q)/ε²(q_i)",
                         ("ratio", "path"): "ε²(π)/ε²(q_i)"}


def _score_error_maps_derived(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["measure"] = [_SCORE_ERROR_MEASURES.get((q, law), "") for q, law in zip(frame["quantity"], frame["law"])]
    return frame


EXPERIMENT = Experiment(
    name="score_error_maps",
    title="Learned score networks (the authors' MLP, CPU-sized): exact DSM excess where trained vs where sampled",
    compute=score_error_maps,
    applies_to=gaussian_only,
    # One cell: two trainings of NetworkConfig.default() and their maps, 31 s wall measured at load average 6. The
    # cell's seed (from --seed) keys the networks, which the report's parameter cache keeps between runs.
    default=grid(setting=("NFC_OOD",), sizes=([100, 10_000],), config=("default",)),
    quick=(),  # training dominates even at the small size; kept out of the quick run the tests make
    derive=_score_error_maps_derived,
    allow_nan=("t",),  # the integrated rows (DSM excess, ratios) have no time
    tables=(TableSpec(
        name="score_error_maps",
        caption="DSM excess ε²(L) = (T − t_min)⁻¹∫σ_t² E_L‖s_net,i − s_i‖² dt of the ε-predictor network (trained on n "
                "exact draws per source, conditional MLP, NetworkConfig.default()) under the source's own marginal "
                "q_i (training side), the diffused target Q and the geometric path π (sampling side), and the "
                "ratios sampling side / training side; Monte Carlo on exact draws ± standard error.",
        index=("setting", "n", "source"), pivot="measure", pivot_header="measure",
        where={"quantity": ("dsm_excess", "ratio")},
        columns=(Column("mean", "value", kind="mean_se", se="se"),),
    ),),
)
