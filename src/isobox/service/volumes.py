"""Volume operations, and turning a spec's mounts into resolved MountPlans for either driver."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from isobox.errors import InvalidArgumentError
from isobox.model.image_config import ImageConfig
from isobox.model.mounts import MountKind, MountPlan, MountSpec
from isobox.service.context import Context
from isobox.storage.volumes import VolumeRecord, VolumeStore


def store(ctx: Context) -> VolumeStore:
    return VolumeStore(ctx.paths, ctx.db)


def create(ctx: Context, name: str | None = None) -> VolumeRecord:
    return store(ctx).create(name)[0]


def inspect(ctx: Context, name: str) -> VolumeRecord:
    return store(ctx).get(name)


def list_volumes(ctx: Context) -> list[VolumeRecord]:
    return store(ctx).all()


def remove(ctx: Context, name: str, *, force: bool = False) -> None:
    store(ctx).remove(name, force=force)


def prune(ctx: Context) -> list[str]:
    return store(ctx).prune()


def resolve_mounts(
    ctx: Context, mounts: tuple[MountSpec, ...], image: ImageConfig, undo: ExitStack
) -> tuple[MountPlan, ...]:
    """Create the named and anonymous volumes (image VOLUMEs too) and check bind sources.

    Volumes created here are registered on ``undo``, so a failed create leaves none behind.
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
            plans.append(MountPlan(MountKind.BIND, item.target, item.source, item.readonly))
        elif item.kind is MountKind.TMPFS:
            plans.append(MountPlan(MountKind.TMPFS, item.target, "", item.readonly, tmpfs_options=item.tmpfs_options))
        else:
            record, created = volumes.create(item.source or None, anonymous=not item.source)
            if created:
                undo.callback(volumes.remove, record.name, force=True)
            plans.append(
                MountPlan(MountKind.VOLUME, item.target, record.path, item.readonly, record.name, record.anonymous)
            )
    return tuple(plans)


def remove_anonymous(ctx: Context, mounts: tuple[MountPlan, ...]) -> None:
    volumes = store(ctx)
    for item in mounts:
        if item.kind is MountKind.VOLUME and item.anonymous:
            volumes.remove(item.volume, force=True)
