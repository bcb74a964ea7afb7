"""config.json generation: golden file for the default container, plus the rules around it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from isobox.drivers.container import monitor, oci_spec
from isobox.model.image_config import ImageConfig
from isobox.model.plan import resolve
from isobox.model.spec import Resources, Security, WorkloadSpec
from isobox.model.users import ResolvedUser

GOLDEN = Path(__file__).parent.parent / "fixtures" / "golden" / "oci_config_default.json"
HOST = oci_spec.HostFacts(
    cgroup_v2=False, swap_accounting=True, nofile_hard=20000, nproc_hard=9000, init_binary="/usr/bin/tini-static"
)


def _plan(**kw: object) -> object:
    spec = WorkloadSpec("busybox", ("sh", "-c", "echo hi"), name="web", **kw)  # type: ignore[arg-type]
    return resolve(
        spec,
        ImageConfig(env=(("PATH", "/bin"),)),
        id="c" * 64,
        name="web",
        image_id="sha256:1",
        layers=("/l/1",),
        workload_dir="/w/c",
    )


def _build(plan: object, **kw: object) -> dict[str, object]:
    return oci_spec.build(  # type: ignore[arg-type]
        plan,
        rootfs="/w/c/rootfs",
        user=ResolvedUser(0, 0),
        capabilities=("CAP_CHOWN", "CAP_KILL"),
        seccomp={"defaultAction": "SCMP_ACT_ERRNO"},
        cgroups_path="/isobox/" + "c" * 64,
        files=(oci_spec.FileMount("/etc/hosts", "/w/c/etc/hosts"),),
        host=HOST,
        **kw,
    )


def test_default_config_matches_golden() -> None:
    config = _build(_plan())
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    assert config == json.loads(GOLDEN.read_text())


def test_secure_defaults() -> None:
    config = _build(_plan())
    process, linux = config["process"], config["linux"]
    assert process["noNewPrivileges"] is True  # type: ignore[index]
    assert "/proc/kcore" in linux["maskedPaths"] and "/proc/sys" in linux["readonlyPaths"]  # type: ignore[index]
    kinds = {ns["type"] for ns in linux["namespaces"]}  # type: ignore[index]
    assert kinds == {"pid", "ipc", "uts", "mount", "network"}
    assert linux["resources"]["devices"][0] == {"allow": False, "access": "rwm"}  # type: ignore[index]
    assert "seccomp" in linux  # type: ignore[operator]
    sys_mount = next(m for m in config["mounts"] if m["destination"] == "/sys")  # type: ignore[attr-defined]
    assert "ro" in sys_mount["options"]


def test_privileged_drops_confinement() -> None:
    config = _build(_plan(security=Security(privileged=True)))
    linux = config["linux"]
    assert "seccomp" not in linux and "maskedPaths" not in linux  # type: ignore[operator]
    assert config["process"]["noNewPrivileges"] is False  # type: ignore[index]
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]  # type: ignore[index]


def test_limits_map_to_cgroup_resources() -> None:
    resources = Resources(memory_bytes=64 << 20, cpus=0.5, cpu_shares=512, pids_limit=50, cpuset_cpus="0")
    linux = _build(_plan(resources=resources))["linux"]
    res = linux["resources"]  # type: ignore[index]
    assert res["memory"] == {"limit": 64 << 20, "swap": 64 << 20}
    assert res["cpu"] == {"quota": 50_000, "period": 100_000, "shares": 512, "cpus": "0"}
    assert res["pids"] == {"limit": 50}


def test_init_and_rlimits_come_from_host_facts() -> None:
    config = _build(_plan(init=True))
    assert config["process"]["args"][:2] == ["/dev/init", "--"]  # type: ignore[index]
    assert {"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 20000} in config["process"]["rlimits"]  # type: ignore[index]
    assert any(m["destination"] == "/dev/init" for m in config["mounts"])  # type: ignore[attr-defined]


def test_conmon_argv() -> None:
    plan = monitor.ConmonPlan(
        conmon="/usr/bin/conmon",
        runtime="/usr/sbin/runc",
        runtime_root="/run/x/oci",
        id="i",
        name="n",
        bundle="/b",
        exit_dir="/run/x/exits",
        log_path="/b/output.log",
        terminal=True,
        stdin=True,
        exit_command=("/py", "-m", "isobox"),
    )
    argv = monitor.build_argv(plan)
    assert argv[:3] == ["/usr/bin/conmon", "--api-version", "1"]
    assert "-t" in argv and "-i" in argv and "--full-attach" in argv
    assert argv[argv.index("-l") + 1] == "k8s-file:/b/output.log"
    assert argv[argv.index("--exit-command") + 1] == "/py"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--exit-command-arg"] == ["-m", "isobox"]


def test_userns_joins_the_user_namespace_pinned_with_its_network_namespace() -> None:
    from dataclasses import replace

    plan = replace(_plan(), userns_base=1_000_000)  # type: ignore[type-var]
    linux = _build(plan, netns_path="/run/isobox/netns/c")["linux"]
    spaces = {n["type"]: n.get("path") for n in linux["namespaces"]}  # type: ignore[index]
    assert spaces["user"] == "/run/isobox/netns/c.userns" and spaces["network"] == "/run/isobox/netns/c"
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 1_000_000, "size": 65536}]  # type: ignore[index]
    alone = _build(plan)["linux"]  # --network none: runc makes both namespaces itself
    assert {"type": "user"} in alone["namespaces"] and {"type": "network"} in alone["namespaces"]  # type: ignore[index]
