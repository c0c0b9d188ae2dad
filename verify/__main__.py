"""``python -m verify`` (also ``catcomp-verify``): the report's command line, :func:`verify.report.cli.main`."""

import sys

from verify.report.cli import main

if __name__ == "__main__":
    sys.exit(main())
