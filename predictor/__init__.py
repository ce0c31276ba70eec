"""predictor: learned decisions for MCP workflows, from their telemetry.

One package: the decisions live here (``predictor.select``, ``predictor.scale``,
...), the layers below and above in ``predictor.data``, ``predictor.models``,
``predictor.training`` and ``predictor.serving``. Importing the package loads
nothing heavy.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("predictor")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
