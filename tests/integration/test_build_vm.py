"""`isobox build --vm`: every RUN step runs in a VM (its own kernel), the result is an ordinary image, and the
VM steps leave nothing behind (no workload, no mount, no cgroup, no root disk of a step)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.integration.build_helpers import build, context, ran_steps, run
from tests.integration.conftest import Cli

pytestmark = [pytest.mark.integration, pytest.mark.vm, pytest.mark.timeout(300)]


def test_run_steps_meet_a_hypervisor(cli: Cli, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("vm-secret")
    ctx = context(tmp_path, {"in.txt": "from the context\n", "Dockerfile": (
        "FROM busybox\n"
        "COPY in.txt /in.txt\n"
        "RUN uname -r > /kernel; cat /in.txt; mkdir -p /data && echo made > /data/out\n"
        "RUN --mount=type=secret,id=tok --mount=type=cache,target=/cache "
        "sh -c 'wc -c < /run/secrets/tok > /secret-length; echo hit >> /cache/log'\n"
        'CMD ["cat", "/data/out"]\n')})
    image, progress = build(cli, ctx, "--vm", "--secret", f"id=tok,src={secret}", "-t", "vm-built:1")
    assert ran_steps(progress) == [3, 4] and "#3 from the context" in progress
    guest_kernel = run(cli, image, "cat", "/kernel").strip()
    assert guest_kernel and guest_kernel != os.uname().release  # the step ran on the guest's kernel
    assert run(cli, image) == "made\n"  # the image built in a VM runs as a container
    assert run(cli, image, "cat", "/secret-length") == "9\n"
    assert "secrets" not in run(cli, image, "ls", "/run")
    rootdisks = Path(cli.root) / "lib" / "cache" / "rootdisks"
    assert not rootdisks.is_dir() or not list(rootdisks.iterdir())
    again, progress = build(cli, ctx, "--vm", "--secret", f"id=tok,src={secret}")
    assert again == image and ran_steps(progress) == []
