"""hotswap: keep PyTorch/transformers models warm while the code around them changes.

Light to import on purpose: a script that uses ``hotswap.warm`` still starts fast under
plain ``python``; nothing here pulls in the daemon, ZeroMQ or torch.
"""

from .metrics import log
from .warm import forget, warm, warm_keys

__version__ = "0.1.0"
__all__ = ["__version__", "forget", "log", "warm", "warm_keys"]
