"""Interrupted pulls: a connection cut mid-blob is resumed with Range in the same pull, and an `isobox pull`
killed with SIGKILL mid-download leaves a store that the next pull completes (continuing the partial blob)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures import registry as registries
from fixtures.registry_crafted import Member, push_image, tar_bytes
from fixtures.registry_proxy import Proxy
from isobox.images.pull import PullEvent, Stage
from isobox.service import images as service
from isobox.service.context import Context, open_context

pytestmark = pytest.mark.integration
BLOB_BYTES = 6 << 20


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registries.Registry]:
    server = registries.start(tmp_path_factory.mktemp("registry"))
    try:
        # Random bytes do not compress: the layer blob is as big as its content.
        push_image(server, "lib/big", "1", [tar_bytes([Member("random.bin", data=os.urandom(BLOB_BYTES))])])
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy(registry: registries.Registry) -> Iterator[Proxy]:
    relay = Proxy(int(registry.host.rsplit(":", 1)[1]))
    relay.start()
    yield relay
    relay.stop()


def blob_progress(events: list[PullEvent], digest: str) -> list[int]:
    return [e.current for e in events if e.stage is Stage.DOWNLOADING and e.digest == digest]


def test_a_cut_connection_is_resumed_within_the_pull(
    ctx: Context, proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.cut_after, proxy.cuts_left = 2 << 20, 1
    events: list[PullEvent] = []
    record = service.pull(ctx, f"127.0.0.1:{proxy.port}/lib/big:1", insecure=True, progress=events.append)
    assert proxy.cuts_left == 0, "the connection was cut"
    assert "resuming (attempt 2 of 3)" in caplog.text
    progress = blob_progress(events, record.layers[0].digest)
    # A restart from byte 0 would show as a drop in the progress; a resume continues where the cut was.
    assert progress == sorted(progress), "the second attempt restarted instead of resuming"
    assert progress[-1] == record.layers[0].size
    assert list(ctx.paths.tmp.iterdir()) == []


def test_a_killed_pull_is_completed_by_the_next_one(ctx: Context, proxy: Proxy, registry: registries.Registry
                                                    ) -> None:
    proxy.bytes_per_s = 2 << 20  # about three seconds for the layer: time to kill it half-way
    env = dict(os.environ, ISOBOX_ROOT=str(ctx.paths.lib.parent))
    child = subprocess.Popen([sys.executable, "-m", "isobox.cli.main", "pull", "--insecure", "-q",
                              f"127.0.0.1:{proxy.port}/lib/big:1"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        partial_size = 0
        while partial_size < 1 << 20 and time.monotonic() < deadline and child.poll() is None:
            partials = list(ctx.paths.tmp.glob("partial-*"))
            partial_size = partials[0].stat().st_size if partials else 0
            time.sleep(0.02)
        assert partial_size >= 1 << 20, "the download never got going"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert service.list_images(ctx) == [], "a killed pull commits nothing"
    events: list[PullEvent] = []
    record = service.pull(ctx, f"{registry.host}/lib/big:1", insecure=True, progress=events.append)
    progress = blob_progress(events, record.layers[0].digest)
    assert progress[0] >= partial_size, "the next pull continued the partial blob"
    assert (ctx.images.layer_dir(record.layers[0].chain_id) / "diff/random.bin").stat().st_size == BLOB_BYTES
    assert list(ctx.paths.tmp.iterdir()) == []
    assert not any(p.name.startswith(".unpack-") for p in ctx.paths.layers.iterdir())


def test_prune_waits_for_a_pull_in_flight(ctx: Context, proxy: Proxy, isobox_root: Path) -> None:
    """Pulls hold the gc lock shared until they commit; prune takes it exclusive, so it cannot delete the
    blobs and layers of an image that is about to be recorded."""
    proxy.bytes_per_s = 4 << 20
    pulled: list[object] = []
    puller = threading.Thread(target=lambda: pulled.append(
        service.pull(ctx, f"127.0.0.1:{proxy.port}/lib/big:1", insecure=True)))
    puller.start()
    deadline = time.monotonic() + 30
    while not list(ctx.paths.tmp.glob("partial-*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    other = open_context(isobox_root, require_root=False)
    pruned: list[service.PruneResult] = []
    pruner = threading.Thread(target=lambda: pruned.append(service.prune(other)))
    try:
        pruner.start()
        time.sleep(0.3)  # the pull needs about a second more at this rate
        assert not pulled and pruner.is_alive(), "prune ran while the pull was still in flight"
    finally:
        puller.join()
        pruner.join()
        other.close()
    assert pruned[0].blobs_removed == 0 and pruned[0].layers_removed == 0
    record = pulled[0]
    assert ctx.images.blobs.has(record.layers[0].digest)  # type: ignore[attr-defined]
    assert ctx.images.layer_dir(record.layers[0].chain_id).is_dir()  # type: ignore[attr-defined]
