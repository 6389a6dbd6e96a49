"""``python -m servegen_core``: the ``servegen`` command line (see :mod:`servegen_core.cli`)."""

from __future__ import annotations

import sys

from servegen_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
