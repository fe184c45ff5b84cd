"""``python -m hotswap``: the same as the ``hotswap`` command."""

from .cli import main

main()
