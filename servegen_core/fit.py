"""Public alias of :mod:`servegen_core.sources.fit`, kept because user code imports ``servegen_core.fit``.

The name is bound to the very module object, so attributes, private names and patches are the same.
"""

import sys

from servegen_core.sources import fit as _module

sys.modules[__name__] = _module
