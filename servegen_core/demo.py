"""Public alias of :mod:`servegen_core.sources.demo`: ``python -m servegen_core.demo`` builds the demo data."""

import sys

from servegen_core.sources import demo as _module

if __name__ == "__main__":
    sys.exit(_module.main())
sys.modules[__name__] = _module
