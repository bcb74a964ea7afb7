"""Docker's run flags that shape a workload's view of its host: parsed into the spec (model/host_settings.py,
model/options.py), written into config.json (a golden file) and into a VM's run script."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from isobox.drivers.container import oci_spec
from isobox.drivers.vm.create import refuse_container_only
from isobox.drivers.vm.guest_script import run_script, settings_lines
from isobox.errors import InvalidArgumentError, UnsupportedError
from isobox.model.host_settings import (
    DeviceSpec,
    DnsConfig,
    Ulimit,
    hosts_with_extras,
    parse_expose,
    parse_extra_host,
    parse_sysctl,
    resolv_with,
)
from isobox.model.image_config import ImageConfig
from isobox.model.options import RunOptions, attached_streams, pull_policy, to_spec
from isobox.model.plan import RunPlan, resolve
from isobox.model.pull import PullPolicy
from isobox.model.spec import Kind
from isobox.model.users import ResolvedUser

GOLDEN = Path(__file__).parent.parent / "fixtures" / "golden" / "oci_config_run_flags.json"
HOST = oci_spec.HostFacts(cgroup_v2=False, swap_accounting=True, nofile_hard=20000, nproc_hard=9000)


def spec_of(**flags: object) -> RunPlan:
    spec = to_spec("busybox", ("sh",), RunOptions(name="web", **flags))  # type: ignore[arg-type]
    return resolve(spec, ImageConfig(exposed_ports=("80/tcp",)), id="c" * 64, name="web", image_id="sha256:1",
                   layers=("/l/1",), workload_dir="/w/c")


FLAGS: dict[str, object] = {
    "add_host": ["db:10.1.2.3", "gw:host-gateway", "v6=fd00::1"],
    "dns": ["9.9.9.9"], "dns_search": ["example.com"], "dns_option": ["ndots:2"],
    "ulimit": ["nofile=1024:2048", "core=-1"], "shm_size": "128m",
    "sysctl": ["net.ipv4.ip_forward=1", "kernel.shmmax=65536"], "stop_signal": "SIGUSR1",
    "memory": "64m", "memory_swap": "128m", "memory_reservation": "32m", "expose": ["9000-9001/udp"],
    "device": ["/dev/fuse"], "security_opt": ["apparmor=isobox-test", "label=type:spc_t"],
}  # fmt: skip


def test_flags_reach_the_plan() -> None:
    plan = spec_of(**FLAGS)
    host = plan.host
    assert host.extra_hosts == (("db", "10.1.2.3"), ("gw", "host-gateway"), ("v6", "fd00::1"))
    assert host.dns == DnsConfig(("9.9.9.9",), ("example.com",), ("ndots:2",))
    assert host.ulimits == (Ulimit("nofile", 1024, 2048), Ulimit("core", -1, -1))
    assert host.sysctls == (("net.ipv4.ip_forward", "1"), ("kernel.shmmax", "65536"))
    assert (host.shm_size_bytes, plan.stop_signal) == (128 << 20, 10)
    assert (plan.resources.memory_swap_bytes, plan.resources.memory_reservation_bytes) == (128 << 20, 32 << 20)
    assert plan.exposed_ports == ("80/tcp", "9000/udp", "9001/udp")
    assert host.devices == (DeviceSpec("/dev/fuse", "/dev/fuse", "rwm"),)
    assert (plan.security.apparmor_profile, plan.security.selinux_label) == ("isobox-test", ("type:spc_t",))


def test_config_json_golden_for_the_flags() -> None:
    fuse = oci_spec.DeviceNode("/dev/fuse", "c", 10, 229, 0o666, "rwm")
    host = oci_spec.HostFacts(cgroup_v2=False, swap_accounting=True, nofile_hard=20000, nproc_hard=9000,
                              apparmor=True, selinux=True)
    config = oci_spec.build(spec_of(**FLAGS), rootfs="/w/c/rootfs", user=ResolvedUser(0, 0), capabilities=(),
                            seccomp=None, cgroups_path="/isobox/c", host=host, devices=(fuse,))
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    assert config == json.loads(GOLDEN.read_text())
    process, linux = config["process"], config["linux"]
    assert {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1} in process["rlimits"]
    assert {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048} in process["rlimits"]
    assert (process["apparmorProfile"], process["selinuxLabel"]) == ("isobox-test", "system_u:system_r:spc_t:s0")
    assert linux["sysctl"] == {"net.ipv4.ip_forward": "1", "kernel.shmmax": "65536"}
    assert linux["resources"]["memory"] == {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20}
    assert linux["devices"] == [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666,
                                 "uid": 0, "gid": 0}]
    assert {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"} in linux["resources"]["devices"]
    shm = next(m for m in config["mounts"] if m["destination"] == "/dev/shm")
    assert "size=131072k" in shm["options"]


def test_no_lsm_on_the_host_no_label_in_the_config() -> None:
    config = oci_spec.build(spec_of(**FLAGS), rootfs="/r", user=ResolvedUser(0, 0), capabilities=(), seccomp=None,
                            cgroups_path="/isobox/c", host=HOST)
    assert "apparmorProfile" not in config["process"] and "selinuxLabel" not in config["process"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"sysctl": ["kernel.hostname=x"]}, "not namespaced"),
        ({"sysctl": ["net.ipv4.ip_forward=1"], "network": ["host"]}, "network namespace is the host's"),
        ({"ulimit": ["nofiles=1"]}, "NAME one of"),
        ({"ulimit": ["nofile=10:5"]}, "soft limit is above"),
        ({"add_host": ["db"]}, "use NAME:IP"),
        ({"add_host": ["db:not-an-ip"]}, "invalid IP"),
        ({"dns": ["dns.example"]}, "an IP address"),
        ({"device": ["dev/fuse"]}, "paths are absolute"),
        ({"device": ["/dev/fuse:/dev/fuse:rwx"]}, "r, w and m"),
        ({"memory_swap": "1g"}, "needs --memory"),
        ({"memory": "1g", "memory_swap": "512m"}, "may not be below"),
        ({"memory": "64m", "memory_reservation": "128m"}, "soft limit below"),
        ({"expose": ["http"]}, "PORT"),
        ({"security_opt": ["label=bogus:1"]}, "unknown --security-opt"),
    ],
)  # fmt: skip
def test_bad_flags_are_refused_naming_the_flag(flags: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        spec_of(**flags)


def test_parsers_accept_docker_forms() -> None:
    assert parse_extra_host("h:[::1]") == ("h", "::1")
    assert Ulimit.parse("nproc=100").hard == 100
    assert DeviceSpec.parse("/dev/sdb:r") == DeviceSpec("/dev/sdb", "/dev/sdb", "r")
    assert DeviceSpec.parse("/dev/sdb:/dev/xvdb:rw") == DeviceSpec("/dev/sdb", "/dev/xvdb", "rw")
    assert parse_sysctl("fs/mqueue/msg_max=20") == ("fs.mqueue.msg_max", "20")
    assert parse_expose("53/UDP") == ("53/udp",)
    assert pull_policy("Always") is PullPolicy.ALWAYS
    assert attached_streams(["STDOUT", "stderr"]) == {"stdout", "stderr"}
    with pytest.raises(InvalidArgumentError, match="always, missing or never"):
        pull_policy("sometimes")
    with pytest.raises(InvalidArgumentError, match="STDIN, STDOUT or STDERR"):
        attached_streams(["stdall"])


def test_etc_files_with_extra_hosts_and_dns() -> None:
    hosts = hosts_with_extras("127.0.0.1\tlocalhost\n", (("db", "10.1.2.3"), ("gw", "host-gateway")), "10.0.0.1")
    assert hosts == "127.0.0.1\tlocalhost\n10.1.2.3\tdb\n10.0.0.1\tgw\n"
    assert hosts_with_extras("x\n", (("gw", "host-gateway"),), "") == "x\n"  # no gateway (--network none)
    text = "nameserver 10.0.0.1\nsearch isobox.internal\noptions edns0\n"
    assert resolv_with(text, DnsConfig()) == text
    assert resolv_with(text, DnsConfig(("1.1.1.1",), (".",), ("ndots:1",))) == "nameserver 1.1.1.1\noptions ndots:1\n"


def test_vm_run_script_sets_sysctls_ulimits_and_shm_before_the_workload(tmp_path: Path) -> None:
    plan = spec_of(ulimit=["nofile=1000:2000", "core=0"], sysctl=["kernel.shmmax=4096"], shm_size="32m")
    script = run_script(hostname="h", argv=("true",), env=(), cwd="/", user=ResolvedUser(0, 0),
                        ulimits=plan.host.ulimits, sysctls=plan.host.sysctls, shm_size_bytes=plan.host.shm_size_bytes)
    assert "ISOBOX_SHM_SIZE=32768k\n" in script
    body = script.split("isobox_workload() {\n", 1)[1]
    assert body.startswith("    printf '%s\\n' 4096 > /proc/sys/kernel/shmmax ||")
    assert "    ulimit -n 2000 && ulimit -S -n 1000 ||" in body and "ulimit -c 0 && ulimit -S -c 0" in body
    # The lines are valid shell, and set what they say (here on a scratch file instead of /proc/sys).
    line = settings_lines((Ulimit("nofile", 100, 200),), (("fs.mqueue.msg_max", "7"),))
    probe = "\n".join(line).replace("/proc/sys/fs/mqueue/msg_max", str(tmp_path / "v"))
    done = subprocess.run(["sh", "-c", f"f() {{\n{probe}\n    ulimit -n; ulimit -Hn; cat {tmp_path / 'v'}\n}}; f"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["100", "200", "7"]


def test_vm_refuses_what_only_a_container_can_do() -> None:
    for flags, flag in (({"device": ["/dev/fuse"]}, "--device"), ({"memory": "1g", "memory_swap": "2g"},
                        "--memory-swap"), ({"memory_reservation": "10m"}, "--memory-reservation"),
                        ({"ulimit": ["rttime=5"]}, "--ulimit")):
        plan = spec_of(vm=True, **flags)
        assert plan.kind is Kind.VM
        with pytest.raises(UnsupportedError, match=f"{flag} is not available for VMs"):
            refuse_container_only(plan)
    refuse_container_only(spec_of(vm=True, ulimit=["nofile=10:20"], sysctl=["net.core.somaxconn=100"]))
