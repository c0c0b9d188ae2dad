"""``python -m verify`` (also ``catcomp-verify``): run every registered experiment and write the verification report.

``--settings FILE.toml`` runs the experiments that take a setting on a user's compositions (a settings file,
:mod:`closed_form.settings_file`); ``python -m verify diagnose FILE.toml`` diagnoses each of them
(:mod:`verify.diagnosis`).

Writes to ``results/`` (``--out DIR`` to change): ``data/*.csv`` with JSON sidecars, ``tables/*.tex``,
``figures/*.pdf`` and ``*.png``, ``report.tex`` and ``summary.md`` with a verdict for every claim. Finished cells are
cached under ``<out>/cache``, so an interrupted run resumes where it stopped.

Exit status: 0 when everything holds or is not applicable; 1 when an asserted bound or identity fails; 2 when an
experiment could not be completed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from verify.report.registry import SIZES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m verify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--size", choices=SIZES, default="default",
                      help="'quick': small cells (what the tests run); 'default'; 'paper': the authors' sizes in the "
                           "experiments that define them (long)")
    size.add_argument("--quick", action="store_const", dest="size", const="quick", help="the same as --size quick")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these experiments (see --list)")
    parser.add_argument("--settings", metavar="FILE.toml",
                        help="run every experiment that takes a setting on the compositions of this TOML settings "
                             "file instead of the paper's (format: closed_form.settings_file); the others are "
                             "reported as not applicable, with the reason. 'python -m verify diagnose FILE.toml' "
                             "diagnoses them one by one")
    parser.add_argument("--list", action="store_true", help="list the registered experiments and exit")
    parser.add_argument("--seed", type=int, default=0, help="run seed; each cell derives its own (default 0)")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="worker processes (default: the number of CPU cores; 1 runs in this process)")
    parser.add_argument("--out", default="results", metavar="DIR", help="output folder (default results/)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None, registry) -> int:
    """Parse ``argv`` and run the report on the experiments of ``registry`` (a :class:`~verify.report.registry.Registry`;
    ``python -m verify`` passes :data:`verify.experiments.REGISTRY`)."""
    args = _parser().parse_args(argv)
    REGISTRY = registry
    from verify.report.registry import RegistryError
    from verify.report.build import build_report, describe

    if args.list:
        print(describe(REGISTRY))
        return 0
    try:
        REGISTRY.select(args.only)
    except RegistryError as err:
        print(f"python -m verify: {err}", file=sys.stderr)
        return 2
    settings = None
    if args.settings is not None:
        from closed_form.errors import CatcompError
        from closed_form.settings_file import load_settings

        try:
            settings = load_settings(args.settings)
        except CatcompError as err:
            print(f"python -m verify: --settings: {err}", file=sys.stderr)
            return 2
    jobs = args.jobs if args.jobs is not None else (os.cpu_count() or 1)
    if jobs < 1:
        print(f"python -m verify: --jobs must be at least 1, got {jobs}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    result = build_report(REGISTRY, args.out, names=args.only, size=args.size, seed=args.seed,
                          settings=settings, jobs=jobs,
                          progress=False if args.no_progress else None)
    from verify.report.claims import FAILS

    verdict = {0: "every asserted check holds", 1: "an asserted check FAILS",
               2: "an experiment could not be completed"}[result.exit_code]
    findings = sum(not r.check.asserted and r.outcome.status == FAILS for r in result.checks)
    if findings:
        verdict += f"; {findings} finding(s) fail (not asserted)"
    print(f"report written to {result.out}/ in {time.perf_counter() - start:.1f} s "
          f"({result.computed} cells computed, {result.cached} cached): {verdict}; see {result.out}/summary.md")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
