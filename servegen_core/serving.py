"""Public alias of :mod:`servegen_core.serve.simulate`, kept because user code imports ``servegen_core.serving``.

The name is bound to the very module object, so attributes, private names and patches are the same.
"""

import sys

from servegen_core.serve import simulate as _module

sys.modules[__name__] = _module
