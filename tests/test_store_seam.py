"""The store seam: the `store` setting, credentials masked, and the local store behind it unchanged."""

from __future__ import annotations

import pytest

from assistant.errors import ConfigError
from assistant.index import build_index, open_index
from assistant.index.store import LocalStore, store_for
from assistant.redact import mask_url, scrub
from assistant.retrieve import Retriever
from assistant.settings import Settings


def test_mask_url_hides_the_password_everywhere() -> None:
    assert mask_url("postgresql://bob:s3cr%40t@db:5432/idx") == "postgresql://bob:***@db:5432/idx"
    assert mask_url("postgresql://bob@db/idx") == "postgresql://bob@db/idx"
    assert mask_url("postgresql:///idx?host=/tmp&password=hunter2") == "postgresql:///idx?host=/tmp&password=***"
    url = "postgresql://bob:hunter2@db/idx"
    assert "hunter2" not in scrub(f'connection to "{url}" failed: password hunter2 rejected', url)


def test_store_setting_is_validated_with_the_password_masked() -> None:
    assert Settings.load(env={}).store == "local"
    assert Settings.load(env={"ASSISTANT_STORE": "postgresql://u:p@h/d"}).store == "postgresql://u:p@h/d"
    with pytest.raises(ConfigError, match=r"^store: must be local or a postgresql:// URL") as e:
        Settings.load(env={}, store="mysql://root:hunter2@db/x")
    assert "hunter2" not in str(e.value)


def test_local_store_reads_what_open_index_reads(settings, hash_embedder) -> None:
    build_index(settings, embedder=hash_embedder)
    store = store_for(settings)
    assert isinstance(store, LocalStore) and store.describe() == str(settings.index_dir)
    assert store.recorded() is not None and store.recorded().chunks > 0
    direct = open_index(settings.index_dir)
    seam = store.open()
    try:
        assert seam.bm25(["tiktok", "shop"], 5) == direct.bm25(["tiktok", "shop"], 5)
        assert [d.path for d in seam.doc_infos] == [d.path for d in direct.doc_infos]
    finally:
        direct.close()
        seam.close()
    hits = Retriever.open(settings, hash_embedder).search("Who joined TikTok from Meta?", k=3)
    assert hits and all(settings.docs_dir.joinpath(h.source).read_text(encoding="utf-8")[h.start:h.end] == h.text
                        for h in hits)
