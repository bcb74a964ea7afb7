"""The build cache's records (state/build_cache.py): entries, whole-build results, what gc must keep, and the
schema step that adds the tables to a database of an isobox from before them."""

from __future__ import annotations

from pathlib import Path

from isobox.service.context import open_context
from isobox.state.build_cache import BuildCacheRepository, CacheEntry

LAYER = CacheEntry("sha256:k1", "sha256:diff", "sha256:blob", "sha256:chain", 10, "application/x",
                   "2024-01-01T00:00:00Z")
CONFIG = CacheEntry("sha256:k2", "", "", "", 0, "", "2024-01-01T00:00:00Z")


def test_entries_results_and_what_gc_keeps(isobox_root: Path) -> None:
    ctx = open_context(isobox_root, require_root=False)
    try:
        cache = BuildCacheRepository(ctx.db)
        cache.put(LAYER)
        cache.put(CONFIG)
        assert cache.get("sha256:k1") == LAYER and cache.get("sha256:k2") == CONFIG and cache.get("nope") is None
        assert not CONFIG.has_layer and cache.kept_layers() == ({"sha256:blob"}, {"sha256:chain"})
        cache.put_result("sha256:build", "sha256:image", '{"steps": []}')
        assert cache.result("sha256:build") == ("sha256:image", '{"steps": []}')
        assert {entry.key for entry in cache.clear()} == {"sha256:k1", "sha256:k2"}
        assert cache.all() == [] and cache.result("sha256:build") is None and cache.kept_layers() == (set(), set())
    finally:
        ctx.close()


def test_a_database_from_before_the_build_cache_gets_its_tables(isobox_root: Path) -> None:
    ctx = open_context(isobox_root, require_root=False)
    with ctx.db.transaction() as tx:
        tx.execute("DROP TABLE build_cache")
        tx.execute("DROP TABLE build_results")
    ctx.db.query("PRAGMA user_version = 3")  # the schema before the build cache
    ctx.close()
    ctx = open_context(isobox_root, require_root=False)
    try:
        assert ctx.db.query("PRAGMA user_version")[0][0] == 4
        BuildCacheRepository(ctx.db).put(LAYER)
        assert BuildCacheRepository(ctx.db).get("sha256:k1") == LAYER
    finally:
        ctx.close()
