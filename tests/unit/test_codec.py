"""Records survive the JSON round trip that the SQLite state uses."""

from __future__ import annotations

from isobox.model.image_config import ImageConfig
from isobox.model.plan import resolve
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Kind, Resources, WorkloadSpec
from isobox.model.status import Status
from isobox.state import codec


def test_workload_record_roundtrip() -> None:
    spec = WorkloadSpec("busybox", ("echo", "x"), kind=Kind.VM, resources=Resources(memory_bytes=1 << 28, cpus=1.5))
    plan = resolve(
        spec,
        ImageConfig(cmd=("sh",)),
        id="f" * 64,
        name="n",
        image_id="sha256:1",
        layers=("/a", "/b"),
        workload_dir="/w",
    )
    record = WorkloadRecord(
        "f" * 64, "n", Kind.VM, Status.RUNNING, plan, 1.0, exit_code=None, driver_info={"accel": "tcg"}
    )
    again = codec.loads(WorkloadRecord, codec.dumps(record))
    assert again == record
    assert again.plan.resources.cpus == 1.5 and again.kind is Kind.VM
