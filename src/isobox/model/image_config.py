"""The parts of an OCI image configuration that decide how a workload runs (image-spec config.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from isobox.errors import InvalidArgumentError
from isobox.model.health import HealthCheck, from_docker


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    workdir: str = ""
    user: str = ""
    stop_signal: str = ""
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    health: HealthCheck | None = None  # HEALTHCHECK

    @classmethod
    def from_oci(cls, document: dict[str, Any]) -> ImageConfig:
        """Build from a parsed OCI/Docker image config JSON (its ``config`` object may be absent or null)."""
        config = document.get("config") or {}

        def strings(key: str) -> tuple[str, ...]:
            value = config.get(key) or []
            return tuple(str(v) for v in value) if isinstance(value, list) else ()

        env = []
        for item in strings("Env"):
            key, _, value = item.partition("=")
            if key:
                env.append((key, value))
        labels = config.get("Labels") or {}
        try:
            health = from_docker(config.get("Healthcheck"), "the image's Healthcheck")
        except InvalidArgumentError:
            health = None  # a malformed HEALTHCHECK in an image is as none: the image still runs
        return cls(
            entrypoint=strings("Entrypoint"),
            cmd=strings("Cmd"),
            env=tuple(env),
            workdir=str(config.get("WorkingDir") or ""),
            user=str(config.get("User") or ""),
            stop_signal=str(config.get("StopSignal") or ""),
            exposed_ports=tuple(sorted((config.get("ExposedPorts") or {}).keys())),
            volumes=tuple(sorted((config.get("Volumes") or {}).keys())),
            labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())) if isinstance(labels, dict) else (),
            health=health,
        )
