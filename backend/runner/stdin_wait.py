"""Whether the script blocks reading its stdin: the main thread sits in read(0) (from
/proc/self/task/TID/syscall), so the daemon can cancel a run whose client vanished instead of
letting it wait forever for input nobody will type."""

from __future__ import annotations

import platform
from pathlib import Path

# read and readv, by machine: input(), sys.stdin.read() and os.read(0) all end in one of them.
_READS = {"x86_64": {0, 19}, "aarch64": {63, 65}, "arm64": {63, 65}}
READ_SYSCALLS = _READS.get(platform.machine(), set())


def reading_stdin(tid: int) -> bool:
    """True if thread ``tid`` of this process is in a read of fd 0 (False where Linux's
    /proc/PID/task/TID/syscall is missing, or on a machine whose numbers we do not know)."""
    try:
        fields = Path(f"/proc/self/task/{tid}/syscall").read_text().split()
    except OSError:
        return False
    if len(fields) < 2 or not fields[0].isdigit():
        return False  # "running", or -1 (not in a system call)
    return int(fields[0]) in READ_SYSCALLS and int(fields[1], 16) == 0
