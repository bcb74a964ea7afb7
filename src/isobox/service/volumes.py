"""Volume operations, and turning a spec's mounts into resolved MountPlans for either driver."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from isobox.errors import InvalidArgumentError
from isobox.model.image_config import ImageConfig
from isobox.model.mounts import MountKind, MountPlan, MountSpec
from isobox.model.spec import Kind, parse_size
from isobox.model.volume import DISK, VolumeRecord
from isobox.service.context import Context
from isobox.storage.volumes import VolumeStore


def store(ctx: Context) -> VolumeStore:
    return VolumeStore(ctx.paths, ctx.records.volumes, ctx.records.workloads)


def create(
    ctx: Context, name: str | None = None, options: tuple[str, ...] = (), *, labels: dict[str, str] | None = None
) -> VolumeRecord:
    """``options``: --opt values, type=dir|disk and size=SIZE (disk volumes)."""
    kind, size = None, None
    for option in options:
        key, sep, value = option.partition("=")
        if key == "type" and sep:
            kind = value
        elif key == "size" and sep:
            size = parse_size(value, what="volume size")
        else:
            raise InvalidArgumentError(
                f"unknown volume option {option!r} (type=dir|disk, size=SIZE)", op="create volume"
            )
    given = dict(option.partition("=")[::2] for option in options)
    volume, made = store(ctx).create(name, kind=kind, size_bytes=size, labels=labels, options=given)
    if made:
        _event(ctx, "create", volume.name)
    return volume


def _event(ctx: Context, action: str, name: str) -> None:
    from isobox.model.events import EventType
    from isobox.service import events

    events.emit(ctx, EventType.VOLUME, action, name, {"driver": "local"})


def resize(ctx: Context, name: str, size: str) -> VolumeRecord:
    volumes = store(ctx)
    return volumes.resize(name, parse_size(size, what="volume size"), volumes.users(name, running_only=True))


def inspect(ctx: Context, name: str) -> VolumeRecord:
    return store(ctx).get(name)


def list_volumes(ctx: Context) -> list[VolumeRecord]:
    return store(ctx).all()


def remove(ctx: Context, name: str, *, force: bool = False) -> None:
    store(ctx).remove(name, force=force)
    _event(ctx, "destroy", name)


def prune(ctx: Context) -> list[str]:
    removed = store(ctx).prune()
    for name in removed:
        _event(ctx, "destroy", name)
    return removed


def resolve_mounts(
    ctx: Context, mounts: tuple[MountSpec, ...], image: ImageConfig, undo: ExitStack, kind: Kind = Kind.CONTAINER
) -> tuple[MountPlan, ...]:
    """Create the named and anonymous volumes (a container's image VOLUMEs too) and check bind sources.

    A VM's anonymous volumes (its image VOLUMEs too) are disk volumes: only that VM can use them. A
    new named volume is a directory volume, which containers and VMs can share. Volumes created here
    are registered on ``undo``, so a failed create leaves none behind.
    """
    volumes = store(ctx)
    plans: list[MountPlan] = []
    targets = {m.target for m in mounts}
    if len(targets) != len(mounts):
        raise InvalidArgumentError("two mounts have the same target", op="create")
    wanted = list(mounts) + [MountSpec(MountKind.VOLUME, t) for t in image.volumes if t not in targets]
    for item in wanted:
        if item.kind is MountKind.BIND:
            if not Path(item.source).exists():
                raise InvalidArgumentError(
                    f"bind mount source {item.source} does not exist", op="create", path=item.source
                )
            if kind is Kind.VM and not Path(item.source).is_dir():
                # virtiofs shares directories; sharing the file's directory would show the guest its neighbours.
                raise InvalidArgumentError(
                    f"a VM can bind-mount directories only, and {item.source} is not one: mount the directory"
                    " that holds it, or copy it into a volume",
                    op="create",
                    path=item.source,
                )
            plans.append(MountPlan(MountKind.BIND, item.target, item.source, item.readonly))
        elif item.kind is MountKind.TMPFS:
            plans.append(MountPlan(MountKind.TMPFS, item.target, "", item.readonly, tmpfs_options=item.tmpfs_options))
        else:
            new_kind = DISK if kind is Kind.VM and not item.source else None
            record, created = volumes.create(item.source or None, anonymous=not item.source, kind=new_kind)
            if created:
                undo.callback(volumes.remove, record.name, force=True)
            if record.is_disk and kind is not Kind.VM:
                raise InvalidArgumentError(
                    f"volume {record.name} is a disk volume, which only VMs can mount; "
                    "a directory volume (the default) is shared by containers and VMs",
                    op="create",
                    id=record.name,
                )
            plans.append(
                MountPlan(
                    MountKind.VOLUME,
                    item.target,
                    record.path,
                    item.readonly,
                    record.name,
                    record.anonymous,
                    disk=record.is_disk,
                )
            )
    return tuple(plans)


def remove_anonymous(ctx: Context, mounts: tuple[MountPlan, ...]) -> None:
    volumes = store(ctx)
    for item in mounts:
        if item.kind is MountKind.VOLUME and item.anonymous:
            volumes.remove(item.volume, force=True)
