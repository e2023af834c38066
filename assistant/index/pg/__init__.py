"""The index in PostgreSQL + pgvector: documents, chunks, BM25 postings and vectors in tables, created by
named, versioned migrations; updates one document per transaction under an advisory lock; readers query
the live tables, so every server pointed at the database sees an update at once."""
