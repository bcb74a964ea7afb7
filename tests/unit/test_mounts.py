"""-v, --mount and --tmpfs parsing."""

from __future__ import annotations

import pytest

from isobox.errors import InvalidArgumentError
from isobox.model.mounts import MountKind, MountSpec, parse_mount, parse_tmpfs, parse_volume


def test_volume_forms() -> None:
    assert parse_volume("data:/srv") == MountSpec(MountKind.VOLUME, "/srv", "data")
    assert parse_volume("data:/srv:ro").readonly
    assert parse_volume("/host/dir:/srv/") == MountSpec(MountKind.BIND, "/srv", "/host/dir")
    assert parse_volume("/cache") == MountSpec(MountKind.VOLUME, "/cache")


@pytest.mark.parametrize("bad", ["data:rel", "data:/a/../b", "data:/x:rx", "a:b:c:d", "bad name:/x", "x:/"])
def test_bad_volumes_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_volume(bad)


def test_mount_and_tmpfs_forms() -> None:
    assert parse_mount("type=bind,source=/h,target=/c,readonly") == MountSpec(MountKind.BIND, "/c", "/h", True)
    assert parse_mount("type=volume,src=v,dst=/d").source == "v"
    assert parse_mount("type=tmpfs,target=/t,tmpfs-size=1m").tmpfs_options == ("size=1m",)
    assert parse_tmpfs("/run:size=8m,mode=1777") == MountSpec(
        MountKind.TMPFS, "/run", "", False, ("size=8m", "mode=1777")
    )
    for bad in ("type=nfs,target=/x", "type=bind,source=rel,target=/x", "source=v", "type=volume,target=/x,colour=red"):
        with pytest.raises(InvalidArgumentError):
            parse_mount(bad)
    with pytest.raises(InvalidArgumentError):
        parse_tmpfs("/t:exec-everything")
