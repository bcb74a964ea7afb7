"""How the VM driver turns what a finished VM left behind into a Docker-style exit code."""

from __future__ import annotations

from pathlib import Path

from isobox.drivers.vm.driver import EXIT_INIT_FAILED, EXIT_KILLED, EXIT_UNKNOWN, exit_status
from isobox.drivers.vm.qemu_args import VMFiles


def files(tmp_path: Path) -> VMFiles:
    return VMFiles(tmp_path, tmp_path / "run")


def test_reported_status_wins(tmp_path: Path) -> None:
    vm = files(tmp_path)
    vm.port("status").write_text("3\n")
    vm.killed.touch()  # killed after the workload had already reported
    code, finished = exit_status(vm)
    assert code == 3
    assert finished is not None


def test_killed_init_error_and_unknown(tmp_path: Path) -> None:
    vm = files(tmp_path)
    assert exit_status(vm)[0] == EXIT_UNKNOWN
    vm.port("status").write_text("init-error: cannot mount the root disk /dev/vda\n")
    assert exit_status(vm)[0] == EXIT_INIT_FAILED
    vm.killed.touch()
    assert exit_status(vm)[0] == EXIT_KILLED


def test_disk_vm_power_off_is_success(tmp_path: Path) -> None:
    vm = files(tmp_path)
    assert exit_status(vm, disk_vm=True)[0] == 0
    vm.killed.touch()
    assert exit_status(vm, disk_vm=True)[0] == EXIT_KILLED
