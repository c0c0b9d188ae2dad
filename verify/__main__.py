"""``python -m verify`` (also ``catcomp-verify``): the report's command line, :func:`verify.report.cli.main`, run on
the experiments of :data:`verify.experiments.REGISTRY`."""

import sys


def main(argv: list[str] | None = None) -> int:
    from verify.experiments import REGISTRY
    from verify.report.cli import main as report_main

    return report_main(argv, REGISTRY)


if __name__ == "__main__":
    sys.exit(main())
