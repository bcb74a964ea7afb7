"""The API's pure parts: routing and versions, filters, the error table, create bodies → WorkloadSpec,
and isobox records → Docker documents."""

from __future__ import annotations

import json
import signal

import pytest

from isobox.api import errors, filters, routing, streams
from isobox.api.container_spec import build_spec
from isobox.api.images import PullProgress, registry_credentials
from isobox.api.messages import Reply
from isobox.errors import (
    ConflictError,
    HostError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
    PolicyError,
)
from isobox.images.pull import PullEvent, Stage
from isobox.model.image_config import ImageConfig
from isobox.model.mounts import MountKind, MountPlan
from isobox.model.network import InterfacePlan, NetworkMode, NetworkPlan, NetworkRecord, PortPlan
from isobox.model.plan import Process, RunPlan
from isobox.model.record import WorkloadRecord
from isobox.model.spec import Kind, RestartPolicy
from isobox.model.status import Status
from isobox.service import inspect

# ---- routing and versions -----------------------------------------------------------------------


def test_version_prefix_and_range() -> None:
    assert routing.split_version("/v1.44/containers/json") == ((1, 44), "/containers/json")
    assert routing.split_version("/containers/json") == (None, "/containers/json")
    assert routing.split_version("/v2/x") == (None, "/v2/x")
    assert routing.check_version(None) == (1, 44)
    assert routing.check_version((1, 24)) == (1, 24)
    with pytest.raises(errors.ApiError) as old:
        routing.check_version((1, 23))
    assert old.value.status == 400 and old.value.message == (
        "client version 1.23 is too old. Minimum supported API version is 1.24, "
        "please upgrade your client to a newer version")
    with pytest.raises(errors.ApiError) as new:
        routing.check_version((1, 45))
    assert new.value.message == "client version 1.45 is too new. Maximum supported API version is 1.44"


async def _handler(app: object, request: object) -> Reply:
    return Reply()


def test_router_patterns_order_and_misses() -> None:
    table = routing.RouteTable(missing="No such image: {name}")
    table.get("/images/json", "list")(_handler)
    table.get("/images/{name:.*}/json", "inspect")(_handler)
    table.delete("/images/{name:.*}", "remove")(_handler)
    table.get("/containers/{id}/json", "inspect container")(_handler)
    router = routing.Router(table)
    assert router.match("GET", "/images/json")[0].name == "list"
    route, params = router.match("GET", "/images/127.0.0.1:5000/lib/busybox:1/json")
    assert route.name == "inspect" and params == {"name": "127.0.0.1:5000/lib/busybox:1"}
    assert router.match("DELETE", "/images/a/b:c")[1] == {"name": "a/b:c"}
    with pytest.raises(errors.ApiError) as slash:
        router.match("GET", "/containers/a/b/json")  # {id} is one segment
    assert slash.value.status == 404 and slash.value.message == "page not found"
    with pytest.raises(errors.ApiError) as method:
        router.match("POST", "/images/json")
    assert method.value.status == 405
    assert route.not_found_message(NotFoundError("x", id=params["name"]), params) == \
        "No such image: 127.0.0.1:5000/lib/busybox:1"
    assert route.not_found_message(NotFoundError("x", id="other"), params) is None
    assert route.not_found_message(ConflictError("x"), params) is None


# ---- errors -------------------------------------------------------------------------------------


def test_error_table() -> None:
    assert errors.status_for(NotFoundError("gone")) == 404
    assert errors.status_for(ConflictError("taken")) == 409
    assert errors.status_for(InvalidStateError("running")) == 409
    assert errors.status_for(InvalidArgumentError("bad")) == 400
    assert errors.status_for(PolicyError("no")) == 403
    assert errors.status_for(errors.NotModified()) == 304
    assert errors.status_for(HostError("no runc", op="start")) == 500
    assert errors.message_for(HostError("no runc"), "start container") == "start container: no runc"
    assert errors.message_for(KeyError("x"), "inspect container") == "inspect container: KeyError: 'x'"
    assert errors.message_for(InvalidArgumentError("bad", op="parse"), "create") == "parse: bad"
    assert json.loads(errors.body("m")) == {"message": "m"}


# ---- filters ------------------------------------------------------------------------------------


def test_both_filter_encodings() -> None:
    allowed = ("label", "status")
    assert filters.decode('{"label": ["a=b"], "status": ["exited"]}', allowed) == {"label": ["a=b"],
                                                                                  "status": ["exited"]}
    assert filters.decode('{"label": {"a=b": true, "c": false}}', allowed) == {"label": ["a=b"]}
    assert filters.decode(None, allowed) == {}
    for bad in ('{"nope": ["x"]}', "[1]", "{not json", '{"label": [1]}'):
        with pytest.raises(InvalidArgumentError):
            filters.decode(bad, allowed)
    labels = {"a": "b", "c": ""}
    assert filters.label_matches(labels, ["a=b", "c"])
    assert not filters.label_matches(labels, ["a=x"])
    assert not filters.label_matches(labels, ["a!=b"])
    assert not filters.label_matches(labels, ["missing"])
    assert filters.bool_filter({"dangling": ["true"]}, "dangling") is True
    assert filters.bool_filter({}, "dangling") is None
    with pytest.raises(InvalidArgumentError):
        filters.bool_filter({"dangling": ["maybe"]}, "dangling")


# ---- container create bodies --------------------------------------------------------------------


def test_create_body_maps_onto_a_spec() -> None:
    body = {
        "Image": "busybox", "Cmd": ["sh", "-c", "x"], "Entrypoint": [""], "Env": ["A=1", "B=two=2"],
        "WorkingDir": "/w", "User": "1:2", "Hostname": "h", "Tty": True, "OpenStdin": True,
        "Labels": {"k": "v"}, "StopSignal": "SIGINT", "StopTimeout": 3, "Volumes": {"/anon": {}},
        "HostConfig": {
            "Binds": ["/etc:/host-etc:ro,z", "data:/data"], "Tmpfs": {"/run": "size=64m"},
            "Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1024}}],
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "53/udp": [{}]},
            "PublishAllPorts": True, "NetworkMode": "net1", "Memory": 64 * 1024 * 1024, "NanoCpus": 1_500_000_000,
            "CpuShares": 512, "PidsLimit": 100, "CpusetCpus": "0", "CapAdd": ["NET_ADMIN"], "CapDrop": ["MKNOD"],
            "Privileged": False, "SecurityOpt": ["no-new-privileges=false", "label=disable"], "ReadonlyRootfs": True,
            "Init": True, "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}, "Isolation": "vm",
            "MemorySwappiness": -1, "LogConfig": {"Type": "json-file"},
        },
        "NetworkingConfig": {"EndpointsConfig": {
            "net1": {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.0.0.5"}}, "net2": {"Aliases": ["w2"]}}},
    }
    spec = build_spec(body, "svc")
    assert spec.name == "svc" and spec.kind is Kind.VM and not spec.kind_by_policy
    assert spec.command == ("sh", "-c", "x") and spec.entrypoint == ()
    assert spec.env == (("A", "1"), ("B", "two=2")) and spec.workdir == "/w" and spec.user == "1:2"
    assert spec.tty and spec.interactive and spec.init and spec.labels == (("k", "v"),)
    assert spec.stop_signal == "SIGINT" and spec.stop_timeout_s == 3.0
    assert spec.resources.memory_bytes == 64 * 1024 * 1024 and spec.resources.cpus == 1.5
    assert spec.resources.cpu_shares == 512 and spec.resources.pids_limit == 100
    assert spec.security.cap_add == ("NET_ADMIN",) and not spec.security.no_new_privileges
    assert spec.security.read_only and spec.restart.policy is RestartPolicy.ON_FAILURE
    assert spec.networks == ("net1", "net2") and spec.ip == "10.0.0.5" and spec.network_aliases == ("web", "w2")
    assert spec.publish_all and {(p.container_port, p.host_port, p.host_ip) for p in spec.publish} == {
        (80, 8080, "127.0.0.1"), (53, 0, "")}
    kinds = {m.target: (m.kind, m.source, m.readonly) for m in spec.mounts}
    assert kinds["/host-etc"] == (MountKind.BIND, "/etc", True)
    assert kinds["/data"] == (MountKind.VOLUME, "data", False)
    assert kinds["/anon"] == (MountKind.VOLUME, "", False)
    assert kinds["/run"][0] is MountKind.TMPFS and kinds["/t"][0] is MountKind.TMPFS


def test_create_defaults_let_the_policy_choose() -> None:
    spec = build_spec({"Image": "busybox", "Cmd": "true", "HostConfig": {"NetworkMode": "default"}}, None)
    assert spec.kind is Kind.CONTAINER and spec.kind_by_policy and spec.networks == () and spec.command == ("true",)
    assert spec.entrypoint is None and spec.stop_signal is None
    assert build_spec({"Image": "busybox", "HostConfig": {"NetworkMode": "none"}}, None).networks == ("none",)


@pytest.mark.parametrize(("body", "named"), [
    ({}, "Image is required"),
    ({"Image": 5}, "Image must be str"),
    ({"Image": "b", "Cmd": [1]}, "Cmd[]"),
    ({"Image": "b", "Tty": "yes"}, "Tty must be bool"),
    ({"Image": "b", "HostConfig": {"Memory": True}}, "HostConfig.Memory"),
    ({"Image": "b", "HostConfig": {"Memory": -1}}, "HostConfig.Memory may not be negative"),
    ({"Image": "b", "HostConfig": {"Links": ["other:alias"]}}, "HostConfig.Links"),
    ({"Image": "b", "HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": "many"}]}}, "Soft must be int"),
    ({"Image": "b", "HostConfig": {"Sysctls": {"vm.swappiness": "1"}}}, "vm.swappiness"),
    ({"Image": "b", "HostConfig": {"PidMode": "host"}}, "HostConfig.PidMode"),
    ({"Image": "b", "HostConfig": {"NetworkMode": "container:x"}}, "container:x"),
    ({"Image": "b", "HostConfig": {"Isolation": "hyperv"}}, "Isolation"),
    ({"Image": "b", "HostConfig": {"LogConfig": {"Type": "syslog"}}}, "LogConfig.Type"),
    ({"Image": "b", "HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}}}, "AutoRemove"),
    ({"Image": "b", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}, "restart policy"),
    ({"Image": "b", "HostConfig": {"PortBindings": {"99999/tcp": []}}}, "invalid port"),
    ({"Image": "b", "HostConfig": {"Binds": ["/a:/b:shared"]}}, "bind option"),
    ({"Image": "b", "Healthcheck": {"Test": ["RUN", "true"]}}, "NONE, CMD or CMD-SHELL"),
    ({"Image": "b", "Healthcheck": {"Test": ["CMD"]}}, "CMD needs a command"),
    ({"Image": "b", "Healthcheck": {"Test": ["CMD", "true"], "Interval": -1}}, "interval"),
    ({"Image": "b", "Healthcheck": {"Test": ["CMD", "true"], "Retries": "3"}}, "Retries must be an integer"),
])
def test_create_refuses_what_it_cannot_honour(body: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        build_spec(body, None)
    assert named in str(refused.value)


def test_registry_auth_header() -> None:
    import base64

    encoded = base64.urlsafe_b64encode(json.dumps({"username": "u", "password": "p/+?"}).encode()).decode()
    creds = registry_credentials(encoded.rstrip("="))
    assert creds is not None and (creds.username, creds.password) == ("u", "p/+?")
    assert registry_credentials(base64.urlsafe_b64encode(b"{}").decode()) is None
    assert registry_credentials(None) is None
    with pytest.raises(InvalidArgumentError):
        registry_credentials("%%%")


def test_pull_progress_lines_and_frames() -> None:
    progress = PullProgress()
    digest = "sha256:" + "ab" * 32
    first = progress.lines(PullEvent(Stage.DOWNLOADING, digest, 5, 10))
    assert [line["status"] for line in first] == ["Pulling fs layer", "Downloading"]
    assert first[1]["progressDetail"] == {"current": 5, "total": 10} and first[1]["id"] == "abababababab"
    assert [line["status"] for line in progress.lines(PullEvent(Stage.UNPACKED, digest))] == ["Pull complete"]
    frame = streams.frame("stderr", b"oops\n")
    assert frame[:8] == b"\x02\x00\x00\x00\x00\x00\x00\x05"
    assert streams.parse_frames(streams.frame("stdout", b"a") + frame) == [(1, b"a"), (2, b"oops\n")]
    error = json.loads(streams.error_line(HostError("broke"), "pull image"))
    assert error == {"error": "pull image: broke", "errorDetail": {"message": "pull image: broke"}}


# ---- records → Docker documents -----------------------------------------------------------------


def _record(status: Status = Status.RUNNING) -> WorkloadRecord:
    interface = InterfacePlan("net1", "n" * 64, "ibr-1", "veth1", "eth0", "02:42:0a:00:00:05", "10.0.0.5", 24,
                              "10.0.0.1", aliases=("web",))
    network = NetworkPlan(NetworkMode.BRIDGE, "/run/netns/x", (interface,),
                          (PortPlan(8080, 80, "10.0.0.5", "127.0.0.1"),))
    plan = RunPlan(
        id="f" * 64, name="svc", kind=Kind.CONTAINER, image="busybox", image_id="sha256:" + "1" * 64,
        process=Process(("/entry", "sh", "-c", "x"), (("A", "1"),), "/w", "1:2"), hostname="h", layers=(),
        workload_dir="/var/lib/isobox/workloads/f", stop_signal=int(signal.SIGINT), stop_timeout_s=3.0,
        labels=(("k", "v"),), network=network,
        mounts=(MountPlan(MountKind.VOLUME, "/data", "/v/_data", False, "data"),
                MountPlan(MountKind.BIND, "/etc2", "/etc", True)),
    )
    return WorkloadRecord(id=plan.id, name="svc", kind=Kind.CONTAINER, status=status, plan=plan,
                          created_at=1700000000.123456789, started_at=1700000001.5, pid=42, exit_code=None,
                          driver_info={"runtime": "runc"})


def test_container_document_shape() -> None:
    image = ImageConfig(entrypoint=("/entry",), cmd=("sh",), exposed_ports=("80/tcp", "443/tcp"))
    document = inspect.container_document(_record(), image)
    assert document["Id"] == "f" * 64 and document["Name"] == "/svc" and document["Image"] == "sha256:" + "1" * 64
    created = document["Created"]  # nanoseconds, as far as a float holds them
    assert created.startswith("2023-11-14T22:13:20.123456") and len(created) == len("2023-11-14T22:13:20.") + 10
    assert document["Path"] == "/entry" and document["Args"] == ["sh", "-c", "x"]
    state = document["State"]
    assert state["Status"] == "running" and state["Running"] and state["Pid"] == 42 and state["ExitCode"] == 0
    assert state["FinishedAt"] == "0001-01-01T00:00:00Z" and state["StartedAt"].startswith("2023-11-14T22:13:21.5")
    config = document["Config"]
    assert config["Entrypoint"] == ["/entry"] and config["Cmd"] == ["sh", "-c", "x"] and config["Env"] == ["A=1"]
    assert config["StopSignal"] == "SIGINT" and config["Labels"] == {"k": "v"}
    endpoint = document["NetworkSettings"]["Networks"]["net1"]
    assert endpoint["IPAddress"] == "10.0.0.5" and endpoint["IPPrefixLen"] == 24 and endpoint["Aliases"] == ["web"]
    assert endpoint["NetworkID"] == "n" * 64 and endpoint["Gateway"] == "10.0.0.1"
    assert document["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
                                                    "443/tcp": None}
    assert document["HostConfig"]["Binds"] == ["data:/data", "/etc:/etc2:ro"]
    assert [m["Type"] for m in document["Mounts"]] == ["volume", "bind"] and document["Mounts"][0]["Name"] == "data"
    assert document["Isobox"]["Kind"] == "container"
    summary = inspect.container_summary(_record(Status.EXITED))
    assert summary["Names"] == ["/svc"] and summary["State"] == "exited" and summary["Status"].startswith("Exited (0)")
    assert summary["Ports"] == [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}]


def test_status_text_and_durations() -> None:
    assert inspect.human_duration(0.2) == "Less than a second"
    assert inspect.human_duration(75) == "About a minute"
    assert inspect.human_duration(3 * 3600) == "3 hours"
    assert inspect.status_text(_record(), now=1700000001.5 + 30) == "Up 30 seconds"
    assert inspect.status_text(_record(Status.CREATED)) == "Created"
    assert inspect.rfc3339(None) == "0001-01-01T00:00:00Z"


def test_network_and_image_documents() -> None:
    network = NetworkRecord("a" * 64, "net1", "10.0.0.0/24", "10.0.0.1", "ibr-a", labels=(("z", "1"), ("a", "2")))
    document = inspect.network_document(network)
    assert list(document["Labels"].items()) == [("z", "1"), ("a", "2")]
    assert document["IPAM"]["Config"] == [{"Subnet": "10.0.0.0/24", "Gateway": "10.0.0.1"}]
    tags, digests = inspect.repo_tags_and_digests(
        ["docker.io/library/busybox:latest", "127.0.0.1:5000/lib/x:1"], "sha256:" + "d" * 64)
    assert tags == ["busybox:latest", "127.0.0.1:5000/lib/x:1"]
    assert digests == ["127.0.0.1:5000/lib/x@sha256:" + "d" * 64, "busybox@sha256:" + "d" * 64]
    assert inspect.created_unix("2023-11-14T22:13:20.123456789Z") == 1700000000
    assert inspect.created_unix("") == 0


def test_create_translates_a_health_check() -> None:
    body = {"Image": "b", "Healthcheck": {"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 2_000_000_000,
                                          "Retries": 5, "StartPeriod": 500_000_000}}
    health = build_spec(body, None).health
    assert health is not None and health.argv() == ("/bin/sh", "-c", "wget -q localhost")
    assert (health.interval_s, health.retries, health.start_period_s, health.timeout_s) == (2.0, 5, 0.5, 0.0)
    disabled = build_spec({"Image": "b", "Healthcheck": {"Test": ["NONE"]}}, None).health
    assert disabled is not None and disabled.disabled


def test_create_translates_host_settings() -> None:
    body = {"Image": "b", "ExposedPorts": {"8080/tcp": {}},
            "HostConfig": {"ExtraHosts": ["db:10.0.0.5"], "Dns": ["10.0.0.53"], "DnsSearch": ["corp"],
                           "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
                           "Sysctls": {"net.ipv4.ip_forward": "1"}, "ShmSize": 128 << 20}}
    spec = build_spec(body, None)
    assert spec.host.extra_hosts == (("db", "10.0.0.5"),) and spec.host.dns.servers == ("10.0.0.53",)
    assert [(u.name, u.soft, u.hard) for u in spec.host.ulimits] == [("nofile", 1024, 2048)]
    assert spec.host.sysctls == (("net.ipv4.ip_forward", "1"),) and spec.host.shm_size_bytes == 128 << 20
    assert spec.expose == ("8080/tcp",)
