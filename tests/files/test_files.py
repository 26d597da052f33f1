"""utils.files: a file or folder appears whole or not at all, whatever stops the write."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from utils.files import is_temp, staged, write_atomic


def failing_fsync(fd: int) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("failure", ["disk full after the bytes went out", "text that cannot be encoded"])
def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch, failure):
    path = tmp_path / "summary.json"
    write_atomic(path, '{"old": true}\n')
    if failure.startswith("disk"):
        monkeypatch.setattr(os, "fsync", failing_fsync)
        new: str = '{"new": true}\n' * 1000
    else:
        new = "half \ud800 written"  # a lone surrogate: UTF-8 refuses it once the temp file is open
    with pytest.raises((OSError, UnicodeEncodeError)):
        write_atomic(path, new)
    assert path.read_text() == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_write_atomic_replaces_text_and_bytes_and_makes_the_folder(tmp_path):
    path = tmp_path / "deep" / "er" / "f.bin"
    write_atomic(path, "first")
    write_atomic(path, b"\x00second")
    assert path.read_bytes() == b"\x00second" and os.listdir(path.parent) == ["f.bin"]


def test_a_folder_is_swapped_in_whole_and_a_stopped_one_leaves_the_old_folder(tmp_path):
    best = tmp_path / "best"
    with staged(best) as tmp:
        tmp.mkdir()
        (tmp / "weights").write_text("v1")
    with pytest.raises(KeyboardInterrupt), staged(best) as tmp:  # Ctrl-C or SIGTERM (turned into it) midway
        tmp.mkdir()
        (tmp / "weights").write_text("v2 half")
        raise KeyboardInterrupt
    assert (best / "weights").read_text() == "v1" and os.listdir(tmp_path) == ["best"]
    with staged(best) as tmp:
        tmp.mkdir()
        (tmp / "weights").write_text("v3")
    assert (best / "weights").read_text() == "v3" and os.listdir(tmp_path) == ["best"]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_a_killed_writer_are_recognised_and_removed_by_the_next_write(tmp_path):
    path = tmp_path / "recipe.resolved.yaml"
    orphan = tmp_path / f".recipe.resolved.yaml.partial-{dead_pid()}"
    orphan_folder = tmp_path / f".recipe.resolved.yaml.old-{dead_pid()}"
    live = tmp_path / ".recipe.resolved.yaml.partial-1"  # pid 1 is alive: its write may still be going on
    other = tmp_path / f".other.yaml.partial-{dead_pid()}"  # another file's: not this write's business
    for leftover in (orphan, live, other):
        leftover.write_text("half")
    orphan_folder.mkdir()
    assert all(is_temp(p) for p in (orphan, orphan_folder, live, other))
    assert not is_temp(path) and not is_temp(tmp_path / ".lock") and not is_temp(tmp_path / "checkpoint-2")

    write_atomic(path, "model: {}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, live.name, other.name])
