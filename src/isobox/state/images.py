"""Image records in SQLite: the images, their names (tags) and their RepoDigests.

Three tables (created in state/db.py's SCHEMA):

- ``images``: one row per image (id = config digest), its JSON ImageRecord and the manifest the store
  keeps for it (``manifest_digest``, the one push and save send);
- ``image_refs``: tags, ``registry/repository:tag`` → image;
- ``image_digests``: RepoDigests as Docker keeps them, ``registry/repository@digest`` → image, one row
  for every digest an image was pulled or pushed by. For a multi-platform pull the digest is the
  index's (what ``docker pull``, registry pages and users pin), and the row also names the platform
  manifest it led to. One index digest may lead to several images (one per platform pulled).

Only this module holds SQL about images; images/store.py keeps the blobs and layers and calls it.

What the blobs cannot tell, an image's names and RepoDigests, is also copied to
``records/images/<hex>.json`` (state/mirror.py) after every change, so `isobox system check` can give images
rebuilt from the blob store their names back. Writes go through ``Database.write``, so `rmi` and `untag`
work on a full disk.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from isobox.errors import ConflictError
from isobox.state.mirror import JsonMirror

if TYPE_CHECKING:
    from isobox.state.db import Database



@dataclass(frozen=True)
class RepoDigest:
    """``repository@digest`` by which an image was pulled or pushed."""

    repository: str  # registry/repository, e.g. docker.io/library/busybox
    digest: str  # the digest the registry serves for it: an index's for a multi-platform image
    image_id: str
    manifest_digest: str  # the image manifest behind ``digest`` (the same digest unless it is an index)
    platform: str = ""

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest}"


@dataclass(frozen=True)
class ImageNames:
    """The JSON copy of what names an image: its tags and RepoDigests, with the manifest it was recorded by."""

    id: str
    manifest_digest: str
    names: tuple[str, ...] = ()
    digests: tuple[RepoDigest, ...] = ()


@dataclass(frozen=True)
class StoredImage:
    id: str
    record: str  # the JSON ImageRecord, decoded by images/store.py


def _repo_digest(row: sqlite3.Row) -> RepoDigest:
    return RepoDigest(row["repository"], row["digest"], row["image_id"], row["manifest_digest"], row["platform"])


class ImageRepository:
    def __init__(self, db: Database, records_dir: Path | None = None) -> None:
        self.db = db
        # Beside the other copies (config.Paths.records), found from the database's own place.
        self.mirror = JsonMirror(records_dir if records_dir is not None else db.path.parent / "records" / "images")

    # ---- reading -------------------------------------------------------------------------------

    def record(self, image_id: str) -> str | None:
        rows = self.db.query("SELECT record FROM images WHERE id = ?", (image_id,))
        return str(rows[0]["record"]) if rows else None

    def records(self) -> list[StoredImage]:
        """Every image, newest first."""
        rows = self.db.query("SELECT id, record FROM images ORDER BY created_at DESC")
        return [StoredImage(r["id"], r["record"]) for r in rows]

    def by_name(self, name: str) -> str | None:
        rows = self.db.query("SELECT image_id FROM image_refs WHERE name = ?", (name,))
        return str(rows[0]["image_id"]) if rows else None

    def by_id_prefix(self, prefix: str) -> list[str]:
        """Ids starting with ``prefix`` (``sha256:`` included); a range scan on the primary key."""
        rows = self.db.query("SELECT id FROM images WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                             (prefix, prefix + "\U0010ffff"))
        return [str(r["id"]) for r in rows]

    def by_repo_digest(self, repository: str, digest: str) -> list[RepoDigest]:
        rows = self.db.query("SELECT * FROM image_digests WHERE repository = ? AND digest = ? "
                             "ORDER BY created_at DESC", (repository, digest))
        return [_repo_digest(r) for r in rows]

    def names(self, image_id: str) -> list[str]:
        rows = self.db.query("SELECT name FROM image_refs WHERE image_id = ? ORDER BY name", (image_id,))
        return [str(r["name"]) for r in rows]

    def all_names(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for row in self.db.query("SELECT name, image_id FROM image_refs ORDER BY name"):
            found.setdefault(str(row["image_id"]), []).append(str(row["name"]))
        return found

    def repo_digests(self, image_id: str) -> list[RepoDigest]:
        rows = self.db.query("SELECT * FROM image_digests WHERE image_id = ? ORDER BY repository, created_at",
                             (image_id,))
        return [_repo_digest(r) for r in rows]

    def all_repo_digests(self) -> dict[str, list[RepoDigest]]:
        found: dict[str, list[RepoDigest]] = {}
        for row in self.db.query("SELECT * FROM image_digests ORDER BY repository, created_at"):
            found.setdefault(str(row["image_id"]), []).append(_repo_digest(row))
        return found

    def manifests(self) -> set[str]:
        """Every manifest digest an image or a RepoDigest refers to (the blobs gc keeps)."""
        rows = self.db.query("SELECT manifest_digest FROM images UNION SELECT manifest_digest FROM image_digests")
        return {str(r["manifest_digest"]) for r in rows}

    # ---- writing -------------------------------------------------------------------------------

    def save(self, image_id: str, manifest_digest: str, record: str, names: Iterable[str],
             digests: Iterable[RepoDigest]) -> None:
        """Insert or replace an image with its manifest; add names (moved from other images) and digests."""
        names, digests = list(names), list(digests)

        def change(tx: sqlite3.Connection) -> set[str]:
            touched = _owners(tx, names) | {image_id}
            tx.execute("INSERT OR REPLACE INTO images (id, manifest_digest, record, created_at) VALUES (?, ?, ?, ?)",
                       (image_id, manifest_digest, record, time.time()))
            for name in names:
                tx.execute("INSERT OR REPLACE INTO image_refs (name, image_id) VALUES (?, ?)", (name, image_id))
            for digest in digests:
                _insert_digest(tx, digest)
            return touched

        self._copy(self.db.write(change))

    def tag(self, image_id: str, name: str) -> None:
        def change(tx: sqlite3.Connection) -> set[str]:
            touched = _owners(tx, [name]) | {image_id}
            tx.execute("INSERT OR REPLACE INTO image_refs (name, image_id) VALUES (?, ?)", (name, image_id))
            return touched

        self._copy(self.db.write(change))

    def add_repo_digest(self, digest: RepoDigest) -> None:
        self.db.write(lambda tx: _insert_digest(tx, digest))
        self._copy({digest.image_id})

    def untag(self, name: str) -> None:
        def change(tx: sqlite3.Connection) -> set[str]:
            touched = _owners(tx, [name])
            tx.execute("DELETE FROM image_refs WHERE name = ?", (name,))
            return touched

        self._copy(self.db.write(change, frees=True))

    def remove_repo_digest(self, digest: RepoDigest) -> None:
        self.db.write(lambda tx: tx.execute(
            "DELETE FROM image_digests WHERE repository = ? AND digest = ? AND image_id = ?",
            (digest.repository, digest.digest, digest.image_id)), frees=True)
        self._copy({digest.image_id})

    def delete(self, image_id: str, *, force: bool, what: str) -> bool:
        """Drop every name and RepoDigest of an image, and the image unless a workload uses it.

        Returns whether the image record went. A used image is refused unless ``force`` (then it keeps
        its record, nameless, for the workloads that run from it).
        """

        def change(tx: sqlite3.Connection) -> list[str]:
            users = [str(r["name"]) for r in
                     tx.execute("SELECT name FROM workloads WHERE image_id = ?", (image_id,)).fetchall()]
            if users and not force:
                raise ConflictError(f"image {what} is used by workload(s) {', '.join(users)}; remove them or use "
                                    "--force", op="remove image")
            tx.execute("DELETE FROM image_refs WHERE image_id = ?", (image_id,))
            tx.execute("DELETE FROM image_digests WHERE image_id = ?", (image_id,))
            if not users:
                tx.execute("DELETE FROM images WHERE id = ?", (image_id,))
            return users

        users = self.db.write(change, frees=True)
        self._copy({image_id})
        return not users

    # ---- JSON copies ---------------------------------------------------------------------------

    def _copy(self, image_ids: set[str]) -> None:
        """Bring the JSON copies of these images in line with the tables (never failing the change)."""
        for image_id in image_ids:
            key = image_id.split(":", 1)[-1]
            rows = self.db.query("SELECT manifest_digest FROM images WHERE id = ?", (image_id,))
            if not rows:
                self.mirror.remove(key)
                continue
            names = ImageNames(image_id, str(rows[0]["manifest_digest"]), tuple(self.names(image_id)),
                               tuple(self.repo_digests(image_id)))
            self.mirror.write(key, names)

    def rewrite_copies(self) -> None:
        """Every image's JSON copy written again from the tables (`isobox system check`)."""
        self._copy({stored.id for stored in self.records()})

    def mirrored(self) -> dict[str, ImageNames]:
        """The JSON copies by image id (for `isobox system check`)."""
        return {copy.id: copy for copy in self.mirror.load_all(ImageNames)}


def _owners(tx: sqlite3.Connection, names: list[str]) -> set[str]:
    """The images that hold these names now (a tag moved to another image changes both copies)."""
    found: set[str] = set()
    for name in names:
        row = tx.execute("SELECT image_id FROM image_refs WHERE name = ?", (name,)).fetchone()
        if row is not None:
            found.add(str(row["image_id"]))
    return found


def _insert_digest(tx: sqlite3.Connection, digest: RepoDigest) -> None:
    tx.execute("INSERT OR REPLACE INTO image_digests (repository, digest, image_id, manifest_digest, platform, "
               "created_at) VALUES (?, ?, ?, ?, ?, ?)",
               (digest.repository, digest.digest, digest.image_id, digest.manifest_digest, digest.platform,
                time.time()))


def _repository_of(name: str) -> str:
    """'host:5000/repo:tag' or 'host/repo@sha256:…' → 'host:5000/repo' (names are stored normalized)."""
    name = name.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def backfill(conn: sqlite3.Connection) -> None:
    """Give a database written before ``image_digests`` existed the RepoDigests it can know (run once, by the
    schema migration that adds the table, inside its transaction).

    Such a store kept one manifest digest per image and let ``repo@digest`` find it under any of the
    image's repositories: each (repository of a name, that manifest digest) becomes a RepoDigest, and
    names that were digest references (``repo@sha256:…``) move to the RepoDigests.
    """
    rows = conn.execute("SELECT i.id, i.manifest_digest, i.record, r.name FROM images i "
                        "JOIN image_refs r ON r.image_id = i.id").fetchall()
    for row in rows:
        try:
            platform = str(json.loads(row["record"]).get("platform", ""))
        except (ValueError, AttributeError):
            platform = ""
        name = str(row["name"])
        digest = name.split("@", 1)[1] if "@" in name else row["manifest_digest"]
        _insert_digest(conn, RepoDigest(_repository_of(name), digest, row["id"], row["manifest_digest"], platform))
        if "@" in name:
            conn.execute("DELETE FROM image_refs WHERE name = ?", (name,))
