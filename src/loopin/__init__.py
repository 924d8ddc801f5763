"""loopin: self-hosted human review of machine-learning predictions.

The public surface is the SDK client and its errors; the server lives in
``loopin.web.server`` and is started with ``loopin serve``.
"""

from loopin.client import Client, WorkerClient
from loopin.errors import LoopinError

__all__ = ["Client", "LoopinError", "WorkerClient", "__version__"]

__version__ = "0.1.0"
