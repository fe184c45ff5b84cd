"""Where a workspace is, its ``.hotswap/`` folder, connection file and ``[tool.hotswap]`` config."""

from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path
from typing import Any

from .sync import DEFAULT_MAX_FILE_BYTES

STATE_DIR = ".hotswap"
CONNECTION_FILE = "connection.json"
DAEMON_LOG = "daemon.log"
MARKERS = (STATE_DIR, ".git", "pyproject.toml")


class WorkspaceMissing(Exception):
    """``--workspace`` names no folder: we refuse rather than create one from a typo."""


def find_workspace(explicit: str | None = None, start: str | None = None) -> Path:
    """``--workspace``, else the nearest ancestor holding a marker, else the cwd."""
    if explicit:
        path = Path(explicit).expanduser().resolve()
        if not path.is_dir():
            raise WorkspaceMissing(
                f"--workspace {explicit}: no such folder ({path}); give an existing project "
                "folder, or create it first"
            )
        return path
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / m).exists() for m in MARKERS):
            return folder
    return here


def state_dir(workspace: Path) -> Path:
    return workspace / STATE_DIR


def connection_path(workspace: Path) -> Path:
    return state_dir(workspace) / CONNECTION_FILE


def write_private_json(path: Path, data: dict[str, Any], compact: bool = False) -> None:
    """Write JSON readable by the owner only, atomically (temporary file + rename).

    ``compact`` for big machine-read files: the indenting encoder is several times slower."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=None if compact else 2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ConnectionFileError(Exception):
    pass


def write_connection(
    workspace: Path, address: str, key: str, started: float, extra: dict[str, Any] | None = None
) -> None:
    """The connection file clients read to reach this process's daemon (mode 0600)."""
    from .protocol import PROTOCOL_VERSION

    info = {
        "address": address,
        "key": key,
        "signature_scheme": "hmac-sha256",
        "pid": os.getpid(),
        "protocol_version": PROTOCOL_VERSION,
        "workspace": str(workspace),
        "started": started,
        **(extra or {}),
    }
    write_private_json(connection_path(workspace), info)


def remove_connection(workspace: Path) -> None:
    """Remove the connection file if it is this process's (not a successor daemon's)."""
    path = connection_path(workspace)
    try:
        if read_connection(path)["pid"] == os.getpid():
            path.unlink()
    except (ConnectionFileError, OSError):
        pass


def read_connection(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConnectionFileError(f"no connection file at {path}") from None
    except (OSError, ValueError) as exc:
        raise ConnectionFileError(f"cannot read connection file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConnectionFileError(f"connection file {path} does not hold a JSON object; delete it")
    for key in ("address", "key", "pid", "protocol_version"):
        if key not in data:
            raise ConnectionFileError(f"connection file {path} lacks {key!r}; delete it")
    return dict(data)


def take_daemon_lock(workspace: Path) -> int:
    """Lock the workspace for one daemon; the fd holds the lock until it is closed."""
    path = state_dir(workspace) / "daemon.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SystemExit(
            f"hotswap: a daemon already serves {workspace}; "
            "use `hotswap status` to see it or `hotswap stop` to stop it"
        ) from None
    return fd


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def proc_cmdline(pid: int) -> list[str] | None:
    """The process's argv from /proc (None where it cannot be read: gone, or no /proc)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name: the state first, the start time
    (field 22) at index 19. None where it cannot be read."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


class Config:
    """``[tool.hotswap]`` of the workspace's pyproject.toml."""

    def __init__(self) -> None:
        self.prewarm: Path | None = None
        self.cancel_timeout = 5.0
        self.workers = 1
        self.nproc_per_node: int | None = None  # rank workers for runs that name none
        self.max_file_bytes = DEFAULT_MAX_FILE_BYTES
        self.debug_timeout = 60.0
        self.debug_listen_at_start = False
        self.auto_warm = True
        self.keep_runs = 50  # run records and metrics kept in .hotswap/runs/

    @classmethod
    def load(cls, workspace: Path) -> Config:
        path = workspace / "pyproject.toml"
        try:
            text = path.read_text()
        except OSError:
            return cls()
        if "hotswap" not in text:
            return cls()  # nothing for us: spare every `hotswap run` the TOML parser
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib
        try:
            table = tomllib.loads(text).get("tool", {}).get("hotswap", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{path}: cannot read [tool.hotswap]: {exc}") from None
        return cls.from_table(table, workspace, path)

    @classmethod
    def from_table(cls, table: dict[str, Any], workspace: Path, source: Path) -> Config:
        known = {
            "prewarm",
            "cancel_timeout",
            "workers",
            "nproc_per_node",
            "max_file_mb",
            "debug_timeout",
            "debug_listen_at_start",
            "auto_warm",
            "keep_runs",
        }
        unknown = set(table) - known
        if unknown:
            raise ValueError(
                f"{source}: unknown [tool.hotswap] keys {sorted(unknown)}; known: {sorted(known)}"
            )
        config = cls()
        if "prewarm" in table:
            if not isinstance(table["prewarm"], str):
                raise ValueError(f"{source}: [tool.hotswap] prewarm must be a path string")
            config.prewarm = (workspace / table["prewarm"]).resolve()
        if "cancel_timeout" in table:
            value = table["cancel_timeout"]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{source}: [tool.hotswap] cancel_timeout must be seconds > 0")
            config.cancel_timeout = float(value)
        if "debug_timeout" in table:
            value = table["debug_timeout"]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{source}: [tool.hotswap] debug_timeout must be seconds > 0")
            config.debug_timeout = float(value)
        if "debug_listen_at_start" in table:
            if not isinstance(table["debug_listen_at_start"], bool):
                raise ValueError(
                    f"{source}: [tool.hotswap] debug_listen_at_start must be true or false"
                )
            config.debug_listen_at_start = table["debug_listen_at_start"]
        if "auto_warm" in table:
            if not isinstance(table["auto_warm"], bool):
                raise ValueError(f"{source}: [tool.hotswap] auto_warm must be true or false")
            config.auto_warm = table["auto_warm"]
        if "max_file_mb" in table:
            value = table["max_file_mb"]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{source}: [tool.hotswap] max_file_mb must be a number > 0")
            config.max_file_bytes = int(value * 1024 * 1024)
        if "keep_runs" in table:
            value = table["keep_runs"]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{source}: [tool.hotswap] keep_runs must be an integer >= 1")
            config.keep_runs = value
        if "workers" in table:
            value = table["workers"]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{source}: [tool.hotswap] workers must be an integer >= 1")
            config.workers = value
        if "nproc_per_node" in table:
            value = table["nproc_per_node"]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"{source}: [tool.hotswap] nproc_per_node must be an integer >= 1 "
                    "(the number of ranks, as torchrun's --nproc-per-node)"
                )
            config.nproc_per_node = value
        return config
