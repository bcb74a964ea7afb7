"""Shared fixtures: every test gets its own private isobox root; integration tests need root."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from isobox.service.context import Context, open_context

ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="integration tests need root")
    for item in items:
        if "integration" in item.keywords and not ROOT:
            item.add_marker(skip)


# Workload ids each private root saw (the CLI fixture adds those its commands made): the leak check looks
# for their cgroups and interfaces after the test.
SEEN: dict[Path, set[str]] = {}


@pytest.fixture
def isobox_root(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A private ISOBOX_ROOT under /var/tmp (a real disk: overlayfs upper dirs cannot live on tmpfs-in-overlay).
    After the test, what it left running is removed and nothing of it may remain on the host (tests/leaks.py)."""
    from isobox.state.workloads import WorkloadRepository

    base = Path(tempfile.mkdtemp(prefix="isobox-test-", dir="/var/tmp"))
    monkeypatch.setenv("ISOBOX_ROOT", str(base))
    # The user's own Podman and Docker credentials (and helpers) are not the tests' business.
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(base / "user-auth.json"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "user-config"))
    monkeypatch.setenv("DOCKER_CONFIG", str(base / "user-docker"))
    seen = SEEN.setdefault(base, set())
    reserve = WorkloadRepository.reserve

    def recording(self: WorkloadRepository, record: object, **kwargs: bool) -> object:
        made = reserve(self, record, **kwargs)  # type: ignore[arg-type]
        seen.add(made.id)
        return made

    monkeypatch.setattr(WorkloadRepository, "reserve", recording)
    yield base
    _stop_engine(base)
    try:
        if ROOT and "integration" in request.keywords:
            _clean_and_check(base, seen)
        else:
            _bring_networks_down(base)
    finally:
        SEEN.pop(base, None)
        shutil.rmtree(base, ignore_errors=True)


def _clean_and_check(root: Path, seen: set[str]) -> None:
    from tests.leaks import leftovers

    if (root / "lib" / "state.db").exists():
        from isobox.errors import NotFoundError
        from isobox.service import networks, workloads

        context = open_context(root)
        try:
            for record in context.records.workloads.all():
                seen.add(record.id)
                try:
                    workloads.remove(context, record.id, force=True, volumes=True)
                except NotFoundError:
                    pass  # an --rm workload that removed itself meanwhile
            networks.prune(context)
        finally:
            context.close()
    found = leftovers(root, seen)
    assert not found, "left on the host after the test:\n" + "\n".join(found)


def _stop_engine(root: Path) -> None:
    """An engine a test's workload started (`isobox serve --background`, service/engine.py) ends with its root."""
    import json
    import signal
    import time

    try:
        pid = int(json.loads((root / "run" / "engine.json").read_text())["pid"])
        if b"serve" not in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
            return  # not that engine any more
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, KeyError):
        return
    deadline = time.monotonic() + 20
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _bring_networks_down(root: Path) -> None:
    """The root's default network stays up after its last workload (as docker0 does): prune it with the root."""
    if ROOT and (root / "lib" / "state.db").exists():
        from isobox.service import networks

        context = open_context(root)
        try:
            networks.prune(context)
        finally:
            context.close()


@pytest.fixture
def ctx(isobox_root: Path) -> Iterator[Context]:
    context = open_context(isobox_root, require_root=False)
    yield context
    context.close()
