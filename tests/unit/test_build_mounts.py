"""RUN --mount specs parsed into RunMount values (isobox.builder.mounts)."""

from __future__ import annotations

import pytest

from isobox.builder.mounts import CacheSharing, MountType, RunMount, parse_bool, parse_mount
from isobox.errors import InvalidArgumentError


def test_bind_is_the_default_type_and_read_only_by_default() -> None:
    mount = parse_mount("target=/src")
    assert (mount.type, mount.target, mount.readonly) == (MountType.BIND, "/src", True)


def test_bind_options_source_from_and_rw() -> None:
    mount = parse_mount("type=bind,source=go.sum,dst=/src/go.sum,from=deps,rw")
    assert (mount.source, mount.target, mount.from_, mount.readonly) == ("go.sum", "/src/go.sum", "deps", False)


@pytest.mark.parametrize("key", ["target", "dst", "destination"])
def test_target_has_three_spellings(key: str) -> None:
    assert parse_mount(f"type=tmpfs,{key}=/t").target == "/t"


@pytest.mark.parametrize("key", ["source", "src"])
def test_source_has_two_spellings(key: str) -> None:
    assert parse_mount(f"{key}=a,target=/t").source == "a"


def test_cache_mount_options() -> None:
    mount = parse_mount("type=cache,target=/root/.cache/pip,id=pip,sharing=locked,mode=0700,uid=1000,gid=100")
    assert mount == RunMount(text="type=cache,target=/root/.cache/pip,id=pip,sharing=locked,mode=0700,uid=1000,"
                             "gid=100", type=MountType.CACHE, target="/root/.cache/pip", readonly=False, id="pip",
                             sharing=CacheSharing.LOCKED, mode=0o700, uid=1000, gid=100)


def test_cache_and_tmpfs_are_writable_by_default() -> None:
    assert not parse_mount("type=cache,target=/c").readonly
    assert not parse_mount("type=tmpfs,target=/t").readonly
    assert parse_mount("type=cache,target=/c,ro").readonly


@pytest.mark.parametrize(("size", "size_bytes"), [("64m", 64 * 2**20), ("1g", 2**30), ("512", 512), ("1.5k", 1536),
                                                  ("2MiB", 2 * 2**20), ("10 kb", 10240)])
def test_tmpfs_size_in_docker_units(size: str, size_bytes: int) -> None:
    assert parse_mount(f"type=tmpfs,target=/t,size={size}").size_bytes == size_bytes


def test_secret_mount_options() -> None:
    mount = parse_mount("type=secret,id=aws,target=/root/.aws/credentials,required,mode=0400,uid=0")
    assert (mount.type, mount.id, mount.required, mount.mode, mount.readonly) == (MountType.SECRET, "aws", True,
                                                                                  0o400, True)
    assert parse_mount("type=secret,id=token,env=API_TOKEN").env == "API_TOKEN"
    assert not parse_mount("type=secret,id=token,required=false").required


def test_ssh_mount_may_be_required() -> None:
    mount = parse_mount("type=ssh,id=default,required=true")
    assert (mount.type, mount.required) == (MountType.SSH, True)


def test_keys_and_enum_values_are_case_insensitive() -> None:
    mount = parse_mount("Type=CACHE,Target=/c,SHARING=Private")
    assert (mount.type, mount.target, mount.sharing) == (MountType.CACHE, "/c", CacheSharing.PRIVATE)


def test_readonly_takes_go_booleans() -> None:
    assert not parse_mount("target=/x,readonly=false").readonly
    assert parse_mount("type=cache,target=/x,ro=1").readonly
    assert not parse_mount("target=/x,rw=T").readonly


def test_csv_quoting_allows_commas_in_values() -> None:
    assert parse_mount('type=bind,"source=a,b",target=/t').source == "a,b"


@pytest.mark.parametrize(("spec", "match"), [
    ("type=volume,target=/x", "unknown mount type 'volume'"),
    ("type=cache,target=/x,sharing=exclusive", "unknown sharing 'exclusive'"),
    ("type=bind,target=/x,colour=red", "unknown option 'colour'"),
    ("type=bind,target=/x,bogus", "option 'bogus' must be a key=value pair"),
    ("type=bind,target=/x,readonly=maybe", "readonly='maybe' is not a boolean"),
    ("type=cache,target=/x,mode=0999", "mode='0999' is not an octal number"),
    ("type=cache,target=/x,uid=-1", "uid='-1' is not a number"),
    ("type=cache,target=/x,gid=4294967296", "gid='4294967296' is not a number"),
    ("type=bind,target=/x,mode=0755", "mode is not allowed for bind mounts"),
    ("type=tmpfs,target=/x,uid=1", "uid is not allowed for tmpfs mounts"),
    ("type=cache,target=/x,size=1m", "'size' is only for tmpfs mounts"),
    ("type=tmpfs,target=/x,size=lots", "size='lots' is not a size"),
    ("type=bind,target=/x,required", "'required' is only for secret and ssh mounts"),
    ("type=bind,target=/x,sharing=shared", "'sharing' is only for cache mounts"),
    ("type=secret,id=x,from=stage", "a secret mount takes no 'from'"),
    ("type=secret,id=x,sharing=locked", "a secret mount takes no 'sharing'"),
    ("type=secret", "a secret mount needs an id, a source or a target"),
    ("type=secret,id=a,source=b", "either 'source' or 'id'"),
    ("type=bind,from=$STAGE,target=/x", "'from' does not take variables"),
])
def test_malformed_mounts_are_refused(spec: str, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        parse_mount(spec)


def test_typed_options_with_variables_wait_for_expansion() -> None:
    mount = parse_mount("type=cache,target=/home/$USER/.cache,uid=$UID")
    assert (mount.target, mount.uid) == ("/home/$USER/.cache", None)
    expanded = parse_mount(mount.text, lambda text: text.replace("$USER", "app").replace("$UID", "1000"))
    assert (expanded.target, expanded.uid) == ("/home/app/.cache", 1000)


def test_expanded_values_are_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="not a number"):
        parse_mount("type=cache,target=/c,uid=$UID", lambda text: "root" if text == "$UID" else text)


def test_go_booleans() -> None:
    assert [parse_bool(text) for text in ("1", "t", "TRUE", "True", "0", "F", "false", "yes", "")] == \
        [True, True, True, True, False, False, False, None, None]
