r"""Exact error maps of trained networks on a Gaussian setting: the authors' ε-predictor trained on ``n`` exact draws
per source, its score error per source and time under ``q^i_t``, ``Q_t`` and ``π_t``, and its DSM excesses
(:func:`verify.analysis.score_errors.score_error_map` says what each number is)."""

from __future__ import annotations

import jax
import pandas as pd

from closed_form import VPSchedule, paper_setting
from closed_form.errors import CatcompError
from verify.analysis.score_errors import PAPER_SOURCE_NAMES, network_config, score_error_map
from verify.report.registry import Experiment, grid
from verify.report.tables import Column, TableSpec
from verify.samplers.networks import network_scores, train_network


def score_error_maps(name: str = "NFC_OOD", sizes=(100, 10_000), seed: int = 0, config="default",
                     per_condition: bool = False, n_mc: int = 2000, n_nodes: int = 12, schedule=None,
                     progress: bool = False) -> pd.DataFrame:
    r"""Train the ε-predictor on pools of ``n ∈ sizes`` exact draws per source of the paper's setting ``name`` and
    return each network's :func:`score_error_map`, with columns ``setting`` and ``n`` in front.

    One network per size (``config``: a :class:`NetworkConfig` or one of :data:`NAMED_CONFIGS`, its
    ``per_condition`` set from ``per_condition`` when named), trained from ``key(seed)`` folded with ``n``; the
    map's draws use an independent key. Gaussian settings only (``FC_ID``, ``NFC_ID``, ``FC_OOD``, ``NFC_OOD``): the
    mixture settings' targets carry a negative weight and have no closed-form ``Q_t``.

    Cost (default arguments, two sizes, 12 nodes × 2000 draws): 31 s wall on this project's shared 2-core machine
    at load average 6, about half of it compiling.
    """
    schedule = schedule or VPSchedule()
    config = network_config(config, per_condition)
    setting = paper_setting(name)
    if not setting.composition.has_closed_form_target:
        raise CatcompError(f"score_error_maps needs a closed-form target; {name} has none. Valid settings: FC_ID, "
                           "NFC_ID, FC_OOD, NFC_OOD.")
    train_key, map_key = jax.random.split(jax.random.key(seed))
    frames = []
    for n in sizes:
        result = train_network(jax.random.fold_in(train_key, int(n)), setting.sources, schedule, int(n), config,
                               progress=progress)
        frame = score_error_map(network_scores(result, schedule), setting.composition, schedule,
                                jax.random.fold_in(map_key, int(n)), n_mc=n_mc, n_nodes=n_nodes,
                                t_min=config.t_min, source_names=PAPER_SOURCE_NAMES)
        frames.append(frame.assign(setting=name, n=int(n)))
    out = pd.concat(frames, ignore_index=True)
    return out[["setting", "n", "quantity", "source", "t", "law", "mean", "se", "n_mc"]]


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
    # The function's own seed (0), not a per-cell one: network_vs_injected trains the same networks, which the
    # report's parameter cache then trains once.
    seed_argument=None,
    # One cell: two trainings of NetworkConfig.default() and their maps, 31 s wall measured at load average 6.
    default=grid(name=("NFC_OOD",), sizes=([100, 10_000],), config=("default",)),
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
