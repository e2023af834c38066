"""The index in a real PostgreSQL + pgvector (pgserver): the same results as the local store, updates per
document, the manifest checks, the advisory lock and the one-line errors."""

from __future__ import annotations

import pytest

from assistant.errors import IndexLockedError, IndexMismatchError, StoreError
from assistant.index import build_index
from assistant.index.store import store_for
from assistant.index.terms import tokenize
from assistant.retrieve import Retriever

QUERIES = ["Who joined TikTok from Meta?", "How many people worked in Bellevue?", "TikTok Shop control China",
           "personalized marketing expertise"]


def test_pg_store_ranks_as_the_local_store(settings, hash_embedder, pg_url) -> None:
    pg = settings.replace(store=pg_url, index_dir=settings.index_dir.parent / "pgcache")
    local_report = build_index(settings, embedder=hash_embedder)
    report = build_index(pg, embedder=hash_embedder)
    assert report.added == local_report.added and report.chunks == local_report.chunks > 0
    local, remote = Retriever.open(settings, hash_embedder), Retriever.open(pg, hash_embedder)
    for q in QUERIES:
        for mode in ("bm25", "dense", "hybrid"):
            a, b = local.search(q, k=5, retrieval=mode), remote.search(q, k=5, retrieval=mode)
            assert [(h.source, h.start, h.end) for h in a] == [(h.source, h.start, h.end) for h in b], (q, mode)
            assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
    bm_local = local.reader.bm25(["tiktok", "meta"], 10)
    bm_pg = remote.reader.bm25(["tiktok", "meta"], 10)
    assert [s for _, s in bm_local] == pytest.approx([s for _, s in bm_pg], rel=1e-5)
    terms = ["tiktok", "meta", "bellevu", "zebra"]
    assert remote.reader.term_counts(terms) == local.reader.term_counts(terms)
    assert [d.path for d in local.documents()] == [d.path for d in remote.documents()]
    for h in remote.search(QUERIES[0], k=3):
        assert remote.document_text(h.source)[h.start:h.end] == h.text
        assert (settings.docs_dir / h.source).read_text(encoding="utf-8")[h.start:h.end] == h.text
    again = build_index(pg, embedder=hash_embedder)
    assert not again.wrote and len(again.unchanged) == 2


def test_pg_updates_a_changed_and_a_removed_document(settings, hash_embedder, pg_url) -> None:
    pg = settings.replace(store=pg_url)
    build_index(pg, embedder=hash_embedder)
    reader = store_for(pg).open()
    shop = settings.docs_dir / "tiktok-shop-shifts-control-to-china.txt"
    shop.write_text(shop.read_text(encoding="utf-8") + "\n\nA closing paragraph about Brazilian zebras.\n", "utf-8")
    other = next(p for p in settings.docs_dir.iterdir() if p != shop)
    other.unlink()
    report = build_index(pg, embedder=hash_embedder)
    assert report.changed == (shop.name,) and report.removed == (other.name,)
    found = reader.bm25(["zebra"], 5)  # the reader opened before the update sees it: no restart
    assert found and reader.chunks([found[0][0]])[found[0][0]].source == shop.name
    assert [d.path for d in reader.doc_infos] == [shop.name]
    assert "zebras" in reader.doc_texts[shop.name] and reader.manifest.documents in (1, 2)
    assert report.chunks == store_for(pg).recorded().chunks


def test_pg_refuses_other_chunk_settings_and_a_second_indexer(settings, hash_embedder, pg_url) -> None:
    pg = settings.replace(store=pg_url)
    build_index(pg, embedder=hash_embedder)
    with pytest.raises(IndexMismatchError, match="chunk_tokens: index has 128, settings say 200"):
        Retriever.open(pg.replace(chunk_tokens=200), hash_embedder)
    from assistant.index.pg.writer import indexer_lock

    with indexer_lock(store_for(pg).db), pytest.raises(IndexLockedError, match=r"^another process is writing "
                                                                              r"the index in postgresql://"):
        build_index(pg, embedder=hash_embedder)
    rebuilt = build_index(pg.replace(chunk_tokens=200), embedder=hash_embedder)
    assert rebuilt.rebuilt and "chunk_tokens" in rebuilt.reason
    assert Retriever.open(pg.replace(chunk_tokens=200), hash_embedder).search("TikTok", k=2)


def test_unreachable_database_is_one_line_without_the_password(settings) -> None:
    url = "postgresql://bob:hunter2@127.0.0.1:9/nodb"
    with pytest.raises(StoreError) as e:
        Retriever.open(settings.replace(store=url))
    msg = str(e.value)
    assert msg.startswith("store postgresql://bob:***@127.0.0.1:9/nodb: cannot connect") and "\n" not in msg
    assert "hunter2" not in msg


def test_pg_dense_is_exact_below_ann_threshold_and_ties_as_local(settings, hash_embedder, pg_url) -> None:
    # Copies of one document: every chunk has twins with the same vector and the same term statistics, so
    # the order among them is the tie-break alone (document and position, then chunk id), on both stores.
    src = sorted(settings.docs_dir.iterdir())[0]
    for name in ("b-copy.txt", "a-copy.txt"):
        (settings.docs_dir / name).write_text(src.read_text(encoding="utf-8"), "utf-8")
    pg = settings.replace(store=pg_url, index_dir=settings.index_dir.parent / "pgcache")
    build_index(settings, embedder=hash_embedder)
    report = build_index(pg, embedder=hash_embedder)  # the copies' texts are not in its embedding cache
    assert len(report.added) == 4 and report.chunks == store_for(settings).recorded().chunks
    local, remote = Retriever.open(settings, hash_embedder), Retriever.open(pg, hash_embedder)
    assert local.dense_index == remote.dense_index == "exact"
    def ranked(reader, found):  # (source, start, score) per hit: the keys differ between stores
        chunks = reader.chunks([key for key, _ in found])
        return [(chunks[key].source, chunks[key].start, round(score, 5)) for key, score in found]

    for q in QUERIES:  # below the search's near-duplicate removal: the readers' own rankings
        terms = tokenize(q)
        a, b = ranked(local.reader, local.reader.bm25(terms, 9)), ranked(remote.reader, remote.reader.bm25(terms, 9))
        assert a == b and len({s for *_, s in a}) < len(a), q  # equal, and the twins did tie
        vec = hash_embedder.embed([q])
        a = ranked(local.reader, local.reader.dense(vec, 9)[0])
        b = ranked(remote.reader, remote.reader.dense(vec, 9)[0])
        assert a == b and len({s for *_, s in a}) < len(a), q
    hnsw = Retriever.open(pg.replace(ann_threshold=1), hash_embedder)
    assert hnsw.dense_index.startswith("hnsw")
    assert [h.source for h in hnsw.search(QUERIES[0], k=3, retrieval="dense")]


def test_database_without_the_vector_extension_is_one_line(settings, hash_embedder, pg_server, pg_url) -> None:
    # A role that owns its database but may not create the (untrusted) extension: the index is refused in one
    # line, without the password, before any table is made.
    import psycopg

    name = pg_url.split("?")[0].rsplit("/", 1)[1]
    pg_server.psql(f"DROP ROLE IF EXISTS plain; CREATE ROLE plain LOGIN; ALTER DATABASE {name} OWNER TO plain;")
    url = pg_url.replace("postgres:@", "plain:s3cret@", 1)
    assert url != pg_url
    with pytest.raises(StoreError) as e:
        build_index(settings.replace(store=url), embedder=hash_embedder)
    msg = str(e.value)
    assert "lacks the `vector` extension and this role cannot create it" in msg and "\n" not in msg
    assert "s3cret" not in msg and "plain:***@" in msg
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0
