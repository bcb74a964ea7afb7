"""The public Python API: every name in __all__ resolves, and the CLI's verbs all have an API function."""

from __future__ import annotations

import isobox


def test_all_names_resolve() -> None:
    for name in isobox.__all__:
        assert getattr(isobox, name) is not None, name


def test_api_covers_the_workload_verbs() -> None:
    verbs = {"run", "create", "start", "stop", "kill", "restart", "remove", "list_workloads", "inspect", "wait",
             "logs", "exec", "stats", "top", "pull", "images", "tag", "remove_image", "commit", "volume_create",
             "volumes", "volume_remove", "volume_resize", "snapshot_create", "snapshots", "snapshot_restore",
             "snapshot_remove"}
    assert verbs <= set(isobox.__all__)


def test_unknown_names_raise_attribute_error() -> None:
    try:
        isobox.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
