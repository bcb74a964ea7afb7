"""What `create` decides before it makes anything: the image (from the store, pulled by the pull policy, or a
root file system its caller resolved), the name's first check, the host's limits, and the RunPlan."""

from __future__ import annotations

from dataclasses import dataclass

from isobox.errors import ConflictError, NotFoundError
from isobox.model import ids
from isobox.model.image_config import ImageConfig
from isobox.model.plan import RunPlan, resolve
from isobox.model.pull import PullPolicy
from isobox.model.spec import Kind, WorkloadSpec
from isobox.service.context import Context


@dataclass(frozen=True)
class ResolvedImage:
    """A root file system its caller resolved itself, for `create` to run from instead of ``spec.image``: a
    build step's (the layers of the image store so far, which no image record names yet). Its kind is the
    caller's choice: the isolation policy, which judges images of the store, is not asked."""

    id: str
    layers: tuple[str, ...]
    config: ImageConfig


def resolve_image(ctx: Context, image: str, pull: PullPolicy = PullPolicy.MISSING
           ) -> tuple[str, tuple[str, ...], ImageConfig]:
    """The image from the store; if missing (or always, by ``pull``), pulled as Docker does (see
    service/images.ensure). A digest reference is the store's only if it was pulled by that digest."""
    try:
        if pull is PullPolicy.ALWAYS:
            raise NotFoundError(f"image {image!r}: pulled again (--pull always)", op="resolve image")
        record = ctx.images.resolve(image)
    except NotFoundError:
        if pull is PullPolicy.NEVER:
            raise
        # Imported here: the registry client (httpx) is only paid for when an image must be fetched.
        from isobox.service import images as image_service

        record = image_service.ensure(ctx, image, policy=pull)
    return record.id, ctx.images.layer_dirs(record), ctx.images.config(record)


def refuse_taken(ctx: Context, name: str) -> None:
    """An early, friendly check before an image is pulled; the INSERT of `reserve` is the real guard."""
    existing = ctx.records.workloads.find(name)
    if existing is not None and existing.name == name:
        raise ConflictError(
            ids.name_in_use(name, existing.id),
            op="create",
            id=name,
        )


def check_host_limits(spec: WorkloadSpec) -> None:
    """Limits beyond what this host has, refused before anything is made (Docker's rules: a container's
    --cpus up to the CPUs there are, --cpuset-cpus among the online ones). A VM's --cpus is its number
    of vCPUs, which QEMU may give beyond the host's CPUs."""
    from isobox.linux.proc import online_cpus_text, usable_cpu_count
    from isobox.model.spec import check_resources, check_spec, parse_cpuset

    check_spec(spec)  # the HTTP API builds its specs without model/options: the same checks for it
    if spec.kind is Kind.VM:
        return
    check_resources(spec.resources, host_cpus=usable_cpu_count(), online_cpus=parse_cpuset(online_cpus_text()))


def new_plan(
    ctx: Context, spec: WorkloadSpec, name: str, image_id: str, layers: tuple[str, ...], image: ImageConfig
) -> RunPlan:
    workload_id = ids.new_id()
    return resolve(
        spec,
        image,
        id=workload_id,
        name=name,
        image_id=image_id,
        layers=layers,
        workload_dir=str(ctx.paths.workloads / workload_id),
    )


def plan(ctx: Context, spec: WorkloadSpec) -> RunPlan:
    """The RunPlan `create` would make for ``spec`` (image resolved, built or pulled), creating nothing.

    With `create_from_plan` this is how drivers' own tests and benchmarks make a workload without the
    service's policy, volumes and networks."""
    image_id, layers, image_config = resolve_image(ctx, spec.image)
    workload_name = ids.validate_name(spec.name) if spec.name else ids.random_name()
    return new_plan(ctx, spec, workload_name, image_id, layers, image_config)
