"""A registry image as a VM: three layers made by umoci (files, .wh. whiteouts, a hard link, an opaque
directory) pulled from a local registry over loopback, then booted. The VM's root disk must show the
merged result exactly as a container's overlay mount would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.conftest import Cli

from fixtures import registry as registries
from fixtures.registry_images import seed

pytestmark = [pytest.mark.integration, pytest.mark.vm, pytest.mark.timeout(240)]

PROBE = (
    "cat /etc/keep.txt /data/b.txt /data/c.txt; "
    "for f in /data/a.txt /opt/old /opt/dir/one.txt; do [ -e $f ] && echo LEFT $f; done; "
    "ls /opt/dir; stat -c '%a %u:%g %h' /data/b.txt; "
    "[ /data/b.txt -ef /data/hard.txt ] && echo hardlinked"
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registries.Registry]:
    server = registries.start(tmp_path_factory.mktemp("vm-registry"))
    try:
        seed(server, "multi", "lib/multi:1")
        yield server
    finally:
        server.stop()


def test_registry_image_boots_with_layers_merged(cli: Cli, registry: registries.Registry, isobox_root: Path) -> None:
    name = f"{registry.host}/lib/multi:1"
    cli("pull", "--insecure", "-q", name, check=True)
    done = cli("run", "--rm", "--vm", "--network", "none", name, "sh", "-c", PROBE, timeout=120, check=True)
    assert done.stdout.split("\n") == ["keep", "b", "c", "two.txt", "640 1000:1000 2", "hardlinked", ""]
    # The second start of the same image converts nothing: one cached root disk. (The image has no `true`: its
    # only commands are sh, ls, cat and echo, and a VM, like a container, runs only what the image holds.)
    cli("run", "--rm", "--vm", "--network", "none", name, "sh", "-c", "exit 0", timeout=120, check=True)
    assert len(list((isobox_root / "lib/cache/rootdisks").glob("*.raw"))) == 1
