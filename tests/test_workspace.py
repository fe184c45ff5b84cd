"""Level 1: finding the workspace, the private connection file, and ``[tool.hotswap]``."""

from __future__ import annotations

import json
import os
import stat
import textwrap
from pathlib import Path

import pytest
from hotswap.workspace import (
    MARKERS,
    Config,
    ConnectionFileError,
    find_workspace,
    read_connection,
    write_private_json,
)

# -- find_workspace ------------------------------------------------------------------


def no_marker_above(path: Path) -> None:
    """The "else the cwd" rule is only observable where no ancestor holds a marker."""
    for folder in (path, *path.parents):
        if any((folder / m).exists() for m in MARKERS):
            pytest.skip(f"{folder} holds a workspace marker; cannot test the fallback here")


def test_explicit_workspace_wins_over_markers(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert find_workspace(str(other), start=str(tmp_path)) == other.resolve()


def test_explicit_workspace_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path)
    assert find_workspace("proj") == (tmp_path / "proj").resolve()
    assert find_workspace("proj").is_absolute()


@pytest.mark.parametrize("marker", MARKERS)
def test_nearest_ancestor_holding_a_marker(tmp_path: Path, marker: str) -> None:
    root = tmp_path / "root"
    deep = root / "src" / "pkg"
    deep.mkdir(parents=True)
    if marker == "pyproject.toml":
        (root / marker).write_text("")
    else:
        (root / marker).mkdir()
    assert find_workspace(start=str(deep)) == root
    assert find_workspace(start=str(root)) == root


def test_the_nearest_marker_wins_over_a_farther_one(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    inner = outer / "inner"
    (inner / "sub").mkdir(parents=True)
    (outer / ".git").mkdir()
    (inner / "pyproject.toml").write_text("")
    assert find_workspace(start=str(inner / "sub")) == inner


def test_default_start_is_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".hotswap").mkdir()
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    assert find_workspace() == tmp_path.resolve()


def test_without_markers_the_cwd_is_the_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_marker_above(tmp_path)
    bare = tmp_path / "bare" / "deeper"
    bare.mkdir(parents=True)
    monkeypatch.chdir(bare)
    assert find_workspace() == bare.resolve()


# -- the private connection file ----------------------------------------------------


def test_write_private_json_is_owner_only_and_complete(tmp_path: Path) -> None:
    path = tmp_path / ".hotswap" / "connection.json"
    data = {"address": "tcp://127.0.0.1:5555", "key": "k" * 64, "pid": 1, "nested": [1, 2]}
    write_private_json(path, data)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == data
    assert os.listdir(path.parent) == ["connection.json"]


def test_write_private_json_stays_private_under_a_lax_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_private_json(tmp_path / "c.json", {"key": "secret"})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "c.json").stat().st_mode) == 0o600


def test_overwriting_replaces_the_file_and_keeps_it_private(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{}")
    path.chmod(0o644)
    write_private_json(path, {"pid": 2})
    assert json.loads(path.read_text()) == {"pid": 2}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["c.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    write_private_json(path, {"pid": 1})
    with pytest.raises(TypeError):
        write_private_json(path, {"pid": 2, "bad": object()})  # fails halfway through the dump
    assert json.loads(path.read_text()) == {"pid": 1}
    assert os.listdir(tmp_path) == ["c.json"]


def test_read_connection_returns_the_written_data(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    data = {"address": "tcp://127.0.0.1:1", "key": "k", "pid": 3, "protocol_version": "1.0"}
    write_private_json(path, data)
    assert read_connection(path) == data


def test_read_connection_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConnectionFileError, match="no connection file at"):
        read_connection(tmp_path / "absent.json")


@pytest.mark.parametrize("text", ["", "not json {", "\x00\xff"])
def test_read_connection_garbage(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ConnectionFileError, match="cannot read connection file"):
        read_connection(path)


@pytest.mark.parametrize("missing", ["address", "key", "pid", "protocol_version"])
def test_read_connection_missing_key(tmp_path: Path, missing: str) -> None:
    data = {"address": "tcp://127.0.0.1:1", "key": "k", "pid": 3, "protocol_version": "1.0"}
    del data[missing]
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConnectionFileError, match=f"lacks {missing!r}; delete it"):
        read_connection(path)


@pytest.mark.parametrize("text", ["[1, 2]", "5", '"text"', "null"])
def test_read_connection_json_that_is_not_an_object(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ConnectionFileError, match="delete it"):
        read_connection(path)


# -- [tool.hotswap] ----------------------------------------------------------------------


def write_pyproject(workspace: Path, table: str) -> Path:
    path = workspace / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n\n[tool.hotswap]\n' + textwrap.dedent(table))
    return path


def test_defaults_without_a_pyproject(tmp_path: Path) -> None:
    config = Config.load(tmp_path)
    assert (config.prewarm, config.cancel_timeout, config.workers) == (None, 5.0, 1)


def test_defaults_without_a_tool_hotswap_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    config = Config.load(tmp_path)
    assert (config.prewarm, config.cancel_timeout, config.workers) == (None, 5.0, 1)


def test_prewarm_is_resolved_against_the_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_pyproject(tmp_path, 'prewarm = "tools/prewarm.py"\ncancel_timeout = 3\nworkers = 2\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the cwd must not matter
    config = Config.load(tmp_path)
    assert config.prewarm == (tmp_path / "tools" / "prewarm.py").resolve()
    assert config.prewarm.is_absolute()
    assert config.cancel_timeout == 3.0 and isinstance(config.cancel_timeout, float)
    assert config.workers == 2


def test_fractional_cancel_timeout_is_kept(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "cancel_timeout = 0.5\n")
    assert Config.load(tmp_path).cancel_timeout == 0.5


@pytest.mark.parametrize("value", ['"5"', "-1", "0", "true", "[5]"])
def test_bad_cancel_timeout_names_the_file_and_key(tmp_path: Path, value: str) -> None:
    path = write_pyproject(tmp_path, f"cancel_timeout = {value}\n")
    with pytest.raises(ValueError, match="cancel_timeout") as info:
        Config.load(tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "true", '"2"'])
def test_bad_workers_names_the_file_and_key(tmp_path: Path, value: str) -> None:
    path = write_pyproject(tmp_path, f"workers = {value}\n")
    with pytest.raises(ValueError, match="workers") as info:
        Config.load(tmp_path)
    assert str(path) in str(info.value)


def test_nproc_per_node_is_read(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "nproc_per_node = 4\n")
    assert Config.load(tmp_path).nproc_per_node == 4


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "true", '"2"'])
def test_bad_nproc_per_node_names_the_file_and_key(tmp_path: Path, value: str) -> None:
    path = write_pyproject(tmp_path, f"nproc_per_node = {value}\n")
    with pytest.raises(ValueError, match="nproc_per_node must be an integer >= 1") as info:
        Config.load(tmp_path)
    assert str(path) in str(info.value)


def test_prewarm_that_is_not_a_string_is_rejected(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, "prewarm = 3\n")
    with pytest.raises(ValueError, match="prewarm") as info:
        Config.load(tmp_path)
    assert str(path) in str(info.value)


def test_unknown_keys_are_rejected_with_the_known_ones(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, "cancel_timout = 2\nprewarm = 'p.py'\n")
    with pytest.raises(ValueError) as info:
        Config.load(tmp_path)
    message = str(info.value)
    assert str(path) in message and "cancel_timout" in message
    for known in ("prewarm", "cancel_timeout", "workers"):
        assert known in message.split("known:")[1]


def test_unreadable_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.hotswap\ncancel_timeout = ")
    with pytest.raises(ValueError, match="cannot read") as info:
        Config.load(tmp_path)
    assert str(path) in str(info.value)
