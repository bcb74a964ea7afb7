"""The public Python API: every name in __all__ resolves, and the CLI's verbs all have an API function."""

from __future__ import annotations

import isobox


def test_all_names_resolve() -> None:
    for name in isobox.__all__:
        assert getattr(isobox, name) is not None, name


def test_api_covers_the_workload_verbs() -> None:
    verbs = {"run", "create", "start", "stop", "kill", "restart", "remove", "list_workloads", "inspect", "wait",
             "logs", "exec", "stats", "top", "pull", "push", "login", "logout", "save", "load", "list_images", "tag",
             "remove_image", "commit", "volume_create", "list_volumes", "volume_remove", "volume_resize",
             "snapshot_create", "list_snapshots", "snapshot_restore", "snapshot_remove", "snapshot_clone", "attach",
             "pause", "unpause", "rename", "network_create", "list_networks", "network_inspect", "network_remove",
             "vm_create", "console", "system_df", "system_prune", "build", "builder_prune"}
    assert verbs <= set(isobox.__all__)


def test_no_api_name_is_shadowed_by_a_subpackage() -> None:
    """`import isobox.images.store` binds the subpackage as `isobox.images`: no API function may share the
    name of a subpackage, or it stops being callable after the first import (`isobox.images()` once did)."""
    import pkgutil

    subpackages = {m.name for m in pkgutil.iter_modules(isobox.__path__)}
    assert not subpackages & set(isobox.__all__)


def test_every_api_function_is_typed_and_documented() -> None:
    import inspect

    for name in isobox.__all__:
        value = getattr(isobox, name)
        if not inspect.isfunction(value):
            continue
        signature = inspect.signature(value)
        untyped = [p.name for p in signature.parameters.values() if p.annotation is inspect.Parameter.empty]
        assert not untyped, f"{name}: untyped {untyped}"
        assert signature.return_annotation is not inspect.Signature.empty, name
        assert value.__doc__, f"{name} has no docstring"


def test_string_commands_split_as_a_shell_does() -> None:
    from isobox.pyapi.options import command_argv

    assert command_argv("echo hi") == ["echo", "hi"]
    assert command_argv("sh -c 'echo a b'") == ["sh", "-c", "echo a b"]
    assert command_argv(["echo hi"]) == ["echo hi"]
    assert command_argv(None) == []


def test_unknown_names_raise_attribute_error() -> None:
    try:
        isobox.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
