"""Public alias of :mod:`servegen_core.generate.sessions`, kept because user code imports ``servegen_core.sessions``.

The name is bound to the very module object, so attributes, private names and patches are the same.
"""

import sys

from servegen_core.generate import sessions as _module

sys.modules[__name__] = _module
