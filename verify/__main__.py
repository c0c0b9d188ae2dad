"""``python -m verify``: the main job.

Until the report lands this prints the paper's settings with their exact targets (closed form where one exists; the
normalizing constant by quadrature and moments of exact rejection samples otherwise).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def _describe_settings(seed: int) -> str:
    import jax

    from closed_form import SETTING_NAMES, paper_setting

    lines = ["The paper's settings, weights (1, 1, -1): Q ∝ P_a1 · P_a2 / P_0", ""]
    for name in SETTING_NAMES:
        s = paper_setting(name)
        comp = s.composition
        fc = {True: "FC", False: "NFC", None: "-"}[s.factorized]
        head = f"{name:8s} [{fc:3s} {'ID' if s.in_distribution else 'OOD'}]"
        if comp.has_closed_form_target:
            tgt = comp.target
            cov = np.asarray(tgt.cov)
            lines.append(f"{head} target N(mean={np.asarray(tgt.mean).round(6).tolist()}, cov={cov.round(6).tolist()})")
            lines.append(f"{'':22s}log Z = {comp.log_normalizer():.12f} (closed form)")
        else:
            log_z, mean, cov = comp.quadrature_moments()
            draw = comp.sample_target(jax.random.key(seed), 2000)
            lines.append(f"{head} target: no closed form; log Z = {log_z:.10f} (cubature)")
            lines.append(f"{'':22s}mean {mean.round(4).tolist()}, cov {cov.round(4).tolist()} (cubature)")
            lines.append(f"{'':22s}exact sampler: {draw.method}, acceptance rate {draw.acceptance_rate:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verify", description=__doc__)
    parser.add_argument("--seed", type=int, default=0, help="seed of the exact target samplers (default 0)")
    args = parser.parse_args(argv)
    print(_describe_settings(args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
