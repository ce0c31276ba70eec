"""predictor: learned decisions for MCP workflows, from their telemetry.

One package: the decisions live here (``predictor.select``, ``predictor.scale``,
...), the layers below and above in ``predictor.data``, ``predictor.models``,
``predictor.training`` and ``predictor.serving``. Importing the package loads
nothing heavy: even ``__version__`` is read from the installed metadata only
when asked for (a command such as ``predictor ingest`` never needs it).

>>> import predictor
>>> predictor.__version__ == predictor.__version__ and isinstance(predictor.__version__, str)
True
"""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    if name != "__version__":
        raise AttributeError(f"module 'predictor' has no attribute {name!r}")
    from importlib import metadata

    try:
        version = metadata.version("predictor")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        version = "0.0.0"
    globals()["__version__"] = version
    return version
