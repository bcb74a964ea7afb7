"""Lock files: a holder may delete its lock file, and nobody then holds a lock on a file others cannot see."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

from isobox.state.locks import discard, discard_idle, keys_with, locked


def _free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_waiter_on_a_deleted_lock_file_locks_the_new_one(tmp_path: Path) -> None:
    order: list[str] = []
    seen_free: list[bool] = []
    holding = threading.Event()

    def waiter() -> None:
        holding.wait()
        with locked(tmp_path, "w"):
            order.append("waiter in")
            seen_free.append(_free(tmp_path / "w.lock"))  # the file at the path must be the one held

    thread = threading.Thread(target=waiter)
    thread.start()
    with locked(tmp_path, "w"):
        holding.set()
        time.sleep(0.2)  # the waiter is now blocked on the file about to be deleted
        discard(tmp_path, "w")
        order.append("holder out")
    thread.join(5)
    assert order == ["holder out", "waiter in"]
    assert seen_free == [False]


def test_discard_idle_leaves_held_locks(tmp_path: Path) -> None:
    with locked(tmp_path, "vm-log-abc"):
        (tmp_path / "vm-agent-abc-1.lock").touch()
        (tmp_path / "other.lock").touch()
        assert sorted(keys_with(tmp_path, "abc")) == ["vm-agent-abc-1", "vm-log-abc"]
        discard_idle(tmp_path, keys_with(tmp_path, "abc"))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["other.lock", "vm-log-abc.lock"]
    discard_idle(tmp_path, ["vm-log-abc", "missing"])
    assert [p.name for p in tmp_path.iterdir()] == ["other.lock"]
