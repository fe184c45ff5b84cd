"""``python -m hotswap.runner``: started by the daemon, never by hand."""

from .worker import main

main()
