"""Connections to the store's database: a pool with timeouts, and driver errors as one-line StoreErrors
whose text never holds the password."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ...errors import StoreError
from ...redact import mask_url, scrub

CONNECT_TIMEOUT = 5  # seconds to reach the server
POOL_TIMEOUT = 30.0  # seconds to wait for a free connection of the pool
STATEMENT_TIMEOUT_MS = 60_000  # a query that runs longer is cancelled (readers; the writer sets its own)


def _driver() -> Any:
    try:
        import psycopg
        import psycopg_pool
    except ImportError:  # pragma: no cover - the extra is part of dev installs
        raise StoreError("a PostgreSQL store needs psycopg: pip install 'assistant[postgres]'") from None
    return psycopg, psycopg_pool


class Database:
    """A lazily opened pool of connections to one database URL."""

    def __init__(self, url: str, max_size: int = 8) -> None:
        self.url = url
        self.shown = mask_url(url)
        self._max = max_size
        self._pool: Any = None

    def _open_pool(self) -> Any:
        psycopg, psycopg_pool = _driver()
        if self._pool is None:
            self.connect().close()  # the server's own reason (refused, no such database, bad password), if any
            pool = psycopg_pool.ConnectionPool(
                self.url, min_size=1, max_size=self._max, timeout=POOL_TIMEOUT, open=False,
                kwargs={"connect_timeout": CONNECT_TIMEOUT, "autocommit": True,
                        "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"})
            try:
                pool.open(wait=True, timeout=CONNECT_TIMEOUT + 2)
            except Exception as e:  # noqa: BLE001
                pool.close()
                raise self.error(e, "cannot connect") from None
            self._pool = pool
        return self._pool

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        """A pooled connection in autocommit mode (use `with conn.transaction():` to group statements)."""
        psycopg, _ = _driver()
        pool = self._open_pool()
        try:
            with pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as e:
            raise self.error(e, "database error") from None

    def connect(self) -> Any:
        """A connection of its own, outside the pool (the writer: it holds the advisory lock)."""
        psycopg, _ = _driver()
        try:
            return psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT, autocommit=True)
        except psycopg.Error as e:
            raise self.error(e, "cannot connect") from None

    def error(self, e: BaseException, what: str) -> StoreError:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "PoolTimeout" in type(e).__name__:
            first = f"no answer within {CONNECT_TIMEOUT} s"
        return StoreError(f"store {self.shown}: {what}: {scrub(first, self.url)}")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
