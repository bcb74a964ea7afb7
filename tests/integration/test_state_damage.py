"""A damaged, empty or missing state database, and other damaged files: isobox stops with a clear error (never
a traceback, never starting over on top of content), `isobox system check` rebuilds the records from what is
on disk, and afterwards nothing still in use is pruned."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration
YES = b"y\n"  # prunes may ask for confirmation: the answer is given on stdin


def _content(cli: Cli) -> dict[str, object]:
    """Images (one committed, one tagged), a named volume and a running container using both."""
    cli("volume", "create", "data", check=True)
    cli("run", "--name", "src", "busybox", "sh", "-c", "echo made > /made", check=True)
    cli("commit", "src", "localhost/made:1", check=True)
    cli("rm", "src", check=True)
    cli("tag", "busybox", "localhost/alias:2", check=True)
    cli("run", "-d", "--name", "web", "-v", "data:/data", "localhost/made:1", "sh", "-c",
        "cat /made > /data/seen; exec sleep 300", check=True)
    return _listing(cli)


def _listing(cli: Cli) -> dict[str, object]:
    listed = json.loads(cli("images", "--json", check=True).stdout)
    images = sorted((i["id"], tuple(i["names"])) for i in listed)
    workloads = sorted((w["name"], w["status"]) for w in json.loads(cli("ps", "-a", "--json", check=True).stdout))
    volumes = sorted(v["name"] for v in json.loads(cli("volume", "ls", "--json", check=True).stdout))
    return {"images": images, "workloads": workloads, "volumes": volumes}


def _empty(db: Path) -> None:
    db.write_bytes(b"")


def _corrupt(db: Path) -> None:
    """Bytes overwritten at the start of every page past the first (their b-tree headers; the file's header
    stays, so SQLite opens it and fails on reading)."""
    with open(db, "r+b") as handle:
        size = db.stat().st_size
        for offset in range(4096, size, 4096):
            handle.seek(offset)
            handle.write(b"\xde\xad\xbe\xef" * 64)


def _missing(db: Path) -> None:
    db.unlink()


@pytest.mark.parametrize("damage", [_empty, _corrupt, _missing], ids=["zero-bytes", "corrupted", "missing"])
def test_damaged_database_is_refused_then_rebuilt(cli: Cli, damage: Callable[[Path], None]) -> None:
    before = _content(cli)
    db = cli.root / "lib" / "state.db"
    cli("images", check=True)  # a checkpoint of the WAL happens on close: the main file holds the records
    for companion in ("state.db-wal", "state.db-shm"):
        (cli.root / "lib" / companion).unlink(missing_ok=True)
    damage(db)
    for verb in (["ps", "-a"], ["images"], ["volume", "ls"], ["system", "prune"], ["run", "busybox", "true"]):
        refused = cli(*verb, input=YES)
        assert refused.returncode == 125, (verb, refused.stdout, refused.stderr)
        assert "Traceback" not in refused.stderr and "isobox system check" in refused.stderr, refused.stderr
    blobs_before = sorted(p.name for p in (cli.root / "lib" / "blobs" / "sha256").iterdir())
    checked = cli("system", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "lost" not in checked.stdout.split("\n")[-2].replace("0 lost", ""), checked.stdout
    if damage is not _missing:
        assert list((cli.root / "lib").glob("state.db.damaged-*")), "the damaged file was not kept aside"
    after = _listing(cli)
    assert after == before, checked.stdout
    pruned = cli("system", "prune", input=YES, check=True).stdout
    assert "removed 0 workloads, 0 networks, 0 images" in pruned.lower(), pruned
    assert sorted(p.name for p in (cli.root / "lib" / "blobs" / "sha256").iterdir()) == blobs_before
    assert _listing(cli) == before
    # The rebuilt records drive the workload as before: exec, stop, and the volume's users.
    assert cli("exec", "web", "cat", "/data/seen", check=True).stdout == "made\n"
    assert "in use" in cli("volume", "rm", "data").stderr
    cli("rm", "-f", "web", check=True)
    assert cli("system", "check", check=True).stdout.endswith("0 problem, 0 repaired, 0 lost\n")


def test_repair_records_what_a_sound_database_lacks(cli: Cli) -> None:
    before = _content(cli)
    from isobox.service.context import open_context

    ctx = open_context(cli.root)
    try:  # records lost one by one (as by a bug, or a restore of an old database file)
        web = ctx.records.workloads.get("web")
        ctx.db.write(lambda tx: tx.execute("DELETE FROM workloads WHERE id = ?", (web.id,)))
        ctx.db.write(lambda tx: tx.execute("DELETE FROM volumes WHERE name = 'data'"))
    finally:
        ctx.close()
    report = cli("system", "check")
    assert report.returncode == 1 and "workload web: it has a JSON copy but no record" in report.stdout, report.stdout
    assert "volume data: its directory has no record" in report.stdout and "\nlost" not in report.stdout
    assert cli("system", "check", "--repair", check=True).stdout.count("repaired ") >= 2
    assert _listing(cli) == before


def test_damaged_files_beside_the_database_give_clear_errors(cli: Cli) -> None:
    """Files isobox reads besides the database, each damaged: a clear error, or a warning and the file ignored."""
    workload_id = cli("run", "-d", "--name", "web", "busybox", "sleep", "300", check=True).stdout.strip()
    lib, run = cli.root / "lib", cli.root / "run"
    garbage = "\0{garbage\xff"
    (lib / "records" / "workloads" / f"{workload_id}.json").write_text("{not json")
    for path in [run / "runtime.json", run / "nftables.applied", *(lib / "records" / "networks").glob("*.json"),
                 *(lib / "records" / "images").glob("*.json"), *(lib / "records" / "volumes").glob("*.json")]:
        path.write_text(garbage)
    (lib / "workloads" / workload_id / "config.json").write_text(garbage)
    assert "OCI configuration cannot be read" in cli("exec", "web", "true").stderr
    for verb in (["ps", "-a"], ["run", "--rm", "busybox", "true"], ["logs", "web"], ["stop", "-t", "1", "web"],
                 ["network", "ls"], ["images"], ["system", "check"]):
        done = cli(*verb)
        assert "Traceback" not in done.stderr, (verb, done.stderr)
    report = cli("system", "check").stdout
    assert "records/networks/" in report and "unreadable" in report and "--repair" in report, report
    (lib / "records" / "networks" / "stray.json").write_text(garbage)
    repaired = cli("system", "check", "--repair").stdout
    assert "repaired  record copy" in repaired and "lost      record copy" in repaired, repaired
    assert "stray.json: unreadable" in repaired and "of no record" in repaired
    (lib / "records" / "networks" / "stray.json").unlink()
    assert cli("system", "check").returncode == 0
    # A record inside the database that does not decode: a StateError naming it, not a traceback.
    from isobox.service.context import open_context

    ctx = open_context(cli.root)
    try:
        ctx.db.write(lambda tx: tx.execute("UPDATE workloads SET record = '[1, 2' WHERE id = ?", (workload_id,)))
    finally:
        ctx.close()
    listed = cli("ps", "-a")
    assert listed.returncode == 125 and "stored record of a workload is damaged" in listed.stderr, listed.stderr
    ctx = open_context(cli.root)
    try:  # put it back from the (rewritten) copy, so the fixture can remove it
        ctx.db.write(lambda tx: tx.execute("DELETE FROM workloads WHERE id = ?", (workload_id,)))
    finally:
        ctx.close()
    cli("system", "check", "--repair")
    assert os.path.exists(lib / "records")
