"""The version of fmclassify, in a module that imports nothing.

Any module may import it (``from fmclassify._version import __version__``) without importing the
package, whose ``__init__`` imports every public module: reading the version from there closed an
import cycle (training -> fmclassify -> experiments -> runs -> training). Keep it equal to
``[project] version`` in ``pyproject.toml`` (a test checks).
"""

__all__ = ["__version__"]

__version__ = "0.1.0.dev0"
