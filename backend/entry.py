"""What to run, read from a command line as ``python`` reads it: ``ENTRY ARGS``, ``-m MODULE
ARGS`` or ``-c CODE ARGS`` (a directory or zip file ENTRY runs its ``__main__.py``)."""

from __future__ import annotations

from typing import NamedTuple

USAGE = "hotswap run [options] (ENTRY | -m MODULE | -c CODE) [ARGS ...]"


class PythonCommand(NamedTuple):
    kind: str  # "path", "module" or "code"
    target: str  # the script, directory or zip file; the module name; the code
    args: list[str]  # sys.argv[1:], exactly as python would have them ("--" included)


class EntryError(ValueError):
    pass


def python_command(
    module: list[str] | None, code: list[str] | None, command: list[str]
) -> PythonCommand:
    """From the parser's ``-m``/``-c`` (each taking everything after it, as python's do) and
    the rest of the line. ``-mNAME`` leaves NAME alone in ``module`` and its args in
    ``command``."""
    for kind, option, given in (("module", "-m", module), ("code", "-c", code)):
        if given is not None:
            if not given:
                raise EntryError(f"Argument expected for the {option} option; usage: {USAGE}")
            return PythonCommand(kind, given[0], [*given[1:], *command])
    if command[:1] == ["--"]:  # `python -- x.py` ends python's options; x.py is the entry
        command = command[1:]
    if not command:
        raise EntryError(f"name what to run; usage: {USAGE}")
    return PythonCommand("path", command[0], command[1:])
