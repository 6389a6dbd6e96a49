"""Public alias of :mod:`servegen_core.generate.compose`, kept because user code imports ``servegen_core.compose``.

The name is bound to the very module object, so attributes, private names and patches are the same.
"""

import sys

from servegen_core.generate import compose as _module

sys.modules[__name__] = _module
