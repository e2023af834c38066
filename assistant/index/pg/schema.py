"""The schema, as named and versioned migrations applied in order and recorded in `schema_migrations`.
Only the writer migrates (under its advisory lock); readers refuse a schema they do not know."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import IndexNotFoundError, StoreError


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str  # may hold {dimension}: the embedding model's, known when the first build runs


MIGRATIONS = (
    Migration(1, "documents_and_chunks", """
CREATE TABLE manifest (id int PRIMARY KEY CHECK (id = 1), data jsonb NOT NULL);
CREATE TABLE corpus (id int PRIMARY KEY CHECK (id = 1), documents bigint NOT NULL, chunks bigint NOT NULL,
                     length double precision NOT NULL);
INSERT INTO corpus VALUES (1, 0, 0, 0);
CREATE TABLE documents (
    id bigserial PRIMARY KEY,
    path text NOT NULL UNIQUE,
    sha256 text NOT NULL,
    title text NOT NULL,
    text text NOT NULL,
    sections jsonb NOT NULL,
    pages jsonb NOT NULL,
    chunks int NOT NULL,
    indexed_at text NOT NULL,
    size bigint NOT NULL,
    mtime_ns bigint NOT NULL);
CREATE TABLE chunks (
    id bigserial PRIMARY KEY,
    document bigint NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    chunk_id text NOT NULL,
    fid bigint NOT NULL,
    source text NOT NULL,
    start int NOT NULL,
    "end" int NOT NULL,
    text text NOT NULL,
    headings jsonb NOT NULL,
    page int,
    length real NOT NULL);
CREATE INDEX chunks_document ON chunks (document);
"""),
    Migration(2, "bm25_postings", """
CREATE TABLE postings (
    term text NOT NULL,
    chunk bigint NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    tf real NOT NULL,
    PRIMARY KEY (term, chunk));
CREATE INDEX postings_chunk ON postings (chunk);
"""),
    Migration(3, "vectors_hnsw_cosine", """
CREATE EXTENSION IF NOT EXISTS vector;
ALTER TABLE chunks ADD COLUMN embedding vector({dimension}) NOT NULL;
CREATE INDEX chunks_embedding ON chunks USING hnsw (embedding vector_cosine_ops);
"""),
    Migration(4, "full_text_search", """
ALTER TABLE chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED;
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
"""),
)
LATEST = MIGRATIONS[-1].version


def applied(conn: Any) -> int:
    """The newest migration applied, 0 when the schema was never created."""
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
        return 0
    return int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0])


def require_vector(conn: Any, shown: str) -> None:
    """The pgvector extension must be available in the server and created in the database (created here
    when the role may; otherwise one line saying who has to)."""
    import psycopg

    if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone() is None:
        raise StoreError(f"store {shown}: the PostgreSQL server lacks the `vector` extension (pgvector): "
                         "install it (e.g. apt-get install postgresql-16-pgvector) or use a server that has it")
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is not None:
        return
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StoreError(f"store {shown}: the database lacks the `vector` extension and this role cannot create "
                         f"it ({why}): have an administrator run CREATE EXTENSION vector in it") from None


def migrate(conn: Any, dimension: int, shown: str) -> list[str]:
    """Apply the migrations not applied yet, each in a transaction; their names."""
    require_vector(conn, shown)
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text NOT NULL, "
                 "applied_at timestamptz NOT NULL DEFAULT now())")
    have = applied(conn)
    if have > LATEST:
        raise StoreError(f"store {shown}: schema version {have} is newer than this assistant knows ({LATEST}): "
                         "upgrade the assistant")
    done = []
    for m in MIGRATIONS:
        if m.version <= have:
            continue
        with conn.transaction():
            conn.execute(m.sql.format(dimension=int(dimension)))
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (m.version, m.name))
        done.append(f"{m.version:03d}_{m.name}")
    return done


def check_readable(conn: Any, shown: str) -> None:
    """Readers: the schema must exist and be the one this code reads."""
    have = applied(conn)
    if have == 0:
        raise IndexNotFoundError(f"no index in {shown}: build it with `assistant index --store URL`")
    if have > LATEST:
        raise StoreError(f"store {shown}: schema version {have} is newer than this assistant knows ({LATEST}): "
                         "upgrade the assistant")
    if have < LATEST:
        raise StoreError(f"store {shown}: schema version {have} is older than this assistant's ({LATEST}): "
                         "run `assistant index --store URL` to migrate it")
