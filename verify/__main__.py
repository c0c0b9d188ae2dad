"""``python -m verify`` (also ``catcomp-verify``): the report's command line, :func:`verify.report.cli.main`, run on
the experiments of :data:`verify.experiments.REGISTRY`; ``python -m verify diagnose FILE.toml`` diagnoses the
compositions of a settings file (:func:`verify.diagnosis.main`)."""

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] == "diagnose":  # python -m verify diagnose FILE.toml [--out DIR]
        from verify.diagnosis import main as diagnose_main

        return diagnose_main(args[1:])
    from verify.experiments import REGISTRY
    from verify.report.cli import main as report_main

    return report_main(argv, REGISTRY)


if __name__ == "__main__":
    sys.exit(main())
