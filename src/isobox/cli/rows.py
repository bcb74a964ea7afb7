"""The rows of isobox's listings, as Docker's row contexts name them: what `--format` templates see.

Each listing has a row class (its fields are Docker's names: ``{{.ID}}``, ``{{.Names}}``, ``{{.Status}}`` …,
plus ``Kind`` where isobox has one), the titles of its columns (Docker's) and its default table. Builders
turn isobox's records into rows; they are pure (the time is passed in), so the golden tests render them.
Private fields (a leading underscore) are left out of ``{{json .}}``, as Docker's row contexts marshal
only their exported fields.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from isobox.cli.tables import (
    PortSummary,
    binary_size,
    ellipsis,
    human_size,
    ports_column,
    quoted_command,
    short_id,
    status_text,
    time_ago,
)
from isobox.images.reference import parse as parse_reference
from isobox.model.mounts import MountKind
from isobox.model.record import WorkloadRecord


def created_at_text(timestamp_s: float) -> str:
    """Docker's CreatedAt: Go's time.Time String in local time, "2024-05-01 10:00:00 +0200 CEST"."""
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(timestamp_s))


def _labels_text(labels: Iterable[tuple[str, str]]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels))


# ---- ps ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerRow:
    ID: str
    Kind: str
    Image: str
    Command: str
    CreatedAt: str
    RunningFor: str
    Ports: str
    State: str
    Status: str
    Size: str
    Names: str
    Labels: str
    Mounts: str
    Networks: str
    LocalVolumes: str
    _labels: dict[str, str] = field(default_factory=dict)

    def Label(self, name: str) -> str:
        """{{.Label "key"}}: one label's value ("" when absent)."""
        return self._labels.get(name, "")


PS_HEADERS = {
    "ID": "CONTAINER ID", "Kind": "KIND", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
    "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES",
}  # fmt: skip
# Docker's default columns, with isobox's KIND (container or vm) after the id.
PS_DEFAULT = "table {{.ID}}\t{{.Kind}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_DEFAULT_SIZE = PS_DEFAULT + "\t{{.Size}}"


def port_summaries(record: WorkloadRecord, exposed: Sequence[str]) -> list[PortSummary]:
    """The workload's published ports, and the image's exposed ports nothing publishes (Docker lists both)."""
    network = record.plan.network
    ports = [PortSummary(p.container_port, p.protocol.value, p.host_ip or "0.0.0.0", p.host_port)
             for p in (network.ports if network is not None else ())]
    published = {(p.private_port, p.protocol) for p in ports}
    for key in exposed:
        number, _, protocol = key.partition("/")
        if number.isdigit() and (int(number), protocol or "tcp") not in published:
            ports.append(PortSummary(int(number), protocol or "tcp"))
    return ports


def ports_column_of(record: WorkloadRecord, exposed: Sequence[str]) -> str:
    """The PORTS cell of a workload."""
    return ports_column(port_summaries(record, exposed))


def container_row(record: WorkloadRecord, *, now_s: float, exposed: Sequence[str] = (), no_trunc: bool = False,
                  size_text: str = "0B") -> ContainerRow:
    plan = record.plan
    network = plan.network
    mounts = [m.volume or m.source for m in plan.mounts if m.kind is not MountKind.TMPFS]
    return ContainerRow(
        ID=short_id(record.id, no_trunc=no_trunc),
        Kind=record.kind.value,
        Image=plan.image,
        Command=quoted_command(" ".join(plan.process.argv), no_trunc=no_trunc),
        CreatedAt=created_at_text(record.created_at),
        RunningFor=time_ago(record.created_at, now_s),
        Ports=ports_column_of(record, exposed),
        State=record.status.value,
        Status=status_text(record.status, started_at_s=record.started_at, finished_at_s=record.finished_at,
                           exit_code=record.exit_code, now_s=now_s),
        Size=size_text,
        Names=record.name,
        Labels=_labels_text(plan.labels),
        Mounts=",".join(m if no_trunc else ellipsis(m, 15) for m in mounts if m),
        Networks=",".join(i.network for i in network.interfaces) if network is not None and network.interfaces
        else (network.mode.value if network is not None else "none"),
        LocalVolumes=str(sum(1 for m in plan.mounts if m.kind is MountKind.VOLUME)),
        _labels=dict(plan.labels),
    )


# ---- images -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageRow:
    Repository: str
    Tag: str
    Digest: str
    ID: str
    CreatedSince: str
    CreatedAt: str
    Size: str
    Platform: str
    _labels: dict[str, str] = field(default_factory=dict)

    def Label(self, name: str) -> str:
        return self._labels.get(name, "")


IMAGE_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
                 "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Platform": "PLATFORM"}
_IMAGE_CREATED = "{{if .CreatedSince}}{{.CreatedSince}}{{else}}N/A{{end}}"  # docker/cli: no time, N/A
IMAGES_DEFAULT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t" + _IMAGE_CREATED + "\t{{.Size}}"
IMAGES_DEFAULT_DIGESTS = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t" + _IMAGE_CREATED + "\t{{.Size}}"


def split_name(name: str) -> tuple[str, str]:
    """'docker.io/library/busybox:latest' → ('busybox', 'latest'); digests show as the tag column."""
    ref = parse_reference(name)
    repository = ref.familiar().split("@", 1)[0]
    if ref.tag and repository.endswith(f":{ref.tag}"):
        repository = repository[: -len(ref.tag) - 1]
    return repository, ref.tag or (ref.digest or "<none>")[:19]


def name_triples(names: Sequence[str], repo_digests: Sequence[str], *, digests: bool) -> list[tuple[str, str, str]]:
    """(repository, tag, digest) of each row Docker's `images` prints for one image: one per tag (times each
    digest of that repository with --digests), then the repositories it has only digests in, tag <none>."""
    by_repository: dict[str, list[str]] = {}
    for text in repo_digests:
        repository, _, digest = parse_reference(text).familiar().partition("@")
        by_repository.setdefault(repository, []).append(digest)
    triples: list[tuple[str, str, str]] = []
    for name in names:
        repository, tag = split_name(name)
        triples += [(repository, tag, digest) for digest in (by_repository.get(repository) or ["<none>"])]
    tagged = {repository for repository, _, _ in triples}
    triples += [(repository, "<none>", digest) for repository, listed in by_repository.items()
                if repository not in tagged for digest in listed]
    if not triples:
        triples = [("<none>", "<none>", "<none>")]
    if not digests:  # one row per repository and tag
        seen = dict.fromkeys((repository, tag) for repository, tag, _ in triples)
        first = {(r, t): d for r, t, d in reversed(triples)}
        triples = [(r, t, first[(r, t)]) for r, t in seen]
    return triples


def image_rows(image_id: str, names: Sequence[str], repo_digests: Sequence[str], *, size_bytes: int,
               created_s: int, platform: str, now_s: float, digests: bool = False, no_trunc: bool = False,
               labels: dict[str, str] | None = None) -> list[ImageRow]:
    since = time_ago(created_s, now_s) if created_s > 0 else ""
    at = created_at_text(created_s) if created_s > 0 else ""
    return [ImageRow(repository, tag, digest, short_id(image_id, no_trunc=no_trunc), since, at,
                     human_size(size_bytes), platform, dict(labels or {}))
            for repository, tag, digest in name_triples(names, repo_digests, digests=digests)]


# ---- networks, volumes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkRow:
    ID: str
    Name: str
    Driver: str
    Scope: str
    Subnet: str
    Gateway: str
    Bridge: str
    IPv6: str
    Internal: str
    CreatedAt: str
    Labels: str
    _labels: dict[str, str] = field(default_factory=dict)

    def Label(self, name: str) -> str:
        return self._labels.get(name, "")


NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Subnet": "SUBNET",
                   "Gateway": "GATEWAY", "Bridge": "BRIDGE", "IPv6": "IPV6", "Internal": "INTERNAL",
                   "CreatedAt": "CREATED AT", "Labels": "LABELS"}
NETWORKS_DEFAULT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}\t{{.Subnet}}"


@dataclass(frozen=True)
class VolumeRow:
    Name: str
    Driver: str
    Scope: str
    Type: str
    Mountpoint: str
    Size: str
    Labels: str
    CreatedAt: str
    _labels: dict[str, str] = field(default_factory=dict)

    def Label(self, name: str) -> str:
        return self._labels.get(name, "")


VOLUME_HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Type": "TYPE",
                  "Mountpoint": "MOUNTPOINT", "Size": "SIZE", "Labels": "LABELS", "CreatedAt": "CREATED AT"}
VOLUMES_DEFAULT = "table {{.Driver}}\t{{.Name}}\t{{.Type}}"


# ---- stats ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatsRow:
    Container: str  # what the user named (or the short id), as Docker's
    ID: str
    Name: str
    Kind: str
    CPUPerc: str
    MemUsage: str
    MemPerc: str
    NetIO: str
    BlockIO: str
    PIDs: str


STATS_HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "Kind": "KIND", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
                 "PIDs": "PIDS"}
STATS_DEFAULT = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}"
                 "\t{{.PIDs}}")


def percent(value: float) -> str:
    return f"{value:.2f}%"


def io_pair(first: int, second: int) -> str:
    """Docker's NET I/O and BLOCK I/O cells: decimal sizes, 3 significant digits, "1.2kB / 648B"."""
    return f"{human_size(first)} / {human_size(second)}"


def memory_cell(usage_bytes: int, limit_bytes: int) -> str:
    return f"{binary_size(usage_bytes)} / {binary_size(limit_bytes)}"


# ---- history ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryRow:
    ID: str
    CreatedSince: str
    CreatedAt: str
    CreatedBy: str
    Size: str
    Comment: str


HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
                   "Size": "SIZE", "Comment": "COMMENT"}
HISTORY_DEFAULT = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


def history_rows(image_id: str, steps: Sequence[object], *, now_s: float, no_trunc: bool = False,
                 human: bool = True) -> list[HistoryRow]:
    """docker history's rows: the image's id on the newest step, <missing> on the others (their images are
    not in the store), the step's command cut to 45 columns unless --no-trunc."""
    from isobox.service.inspect import created_unix

    rows = []
    for index, step in enumerate(steps):
        created = created_unix(str(getattr(step, "created", "")))
        command = " ".join(str(getattr(step, "created_by", "")).split())
        size = int(getattr(step, "size", 0))
        rows.append(HistoryRow(
            ID=short_id(image_id, no_trunc=no_trunc) if index == 0 else "<missing>",
            CreatedSince=(time_ago(created, now_s) if human else created_at_text(created)) if created else "N/A",
            CreatedAt=created_at_text(created) if created else "",
            CreatedBy=command if no_trunc else ellipsis(command, 45),
            Size=human_size(size) if human else str(size),
            Comment=str(getattr(step, "comment", "")),
        ))
    return rows


# ---- system df --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiskUsageRow:
    Type: str
    TotalCount: str
    Active: str
    Size: str
    Reclaimable: str


DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}
DF_DEFAULT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"


def df_rows(summaries: Sequence[object]) -> list[DiskUsageRow]:
    """docker system df: RECLAIMABLE is a size with its share of the total, "1.2MB (50%)"."""
    rows = []
    for item in summaries:
        size, reclaimable = int(getattr(item, "size_bytes", 0)), int(getattr(item, "reclaimable_bytes", 0))
        share = f" ({100 * reclaimable // size}%)" if size else ""
        rows.append(DiskUsageRow(str(getattr(item, "kind", "")), str(getattr(item, "total", 0)),
                                 str(getattr(item, "active", 0)), human_size(size), human_size(reclaimable) + share))
    return rows
