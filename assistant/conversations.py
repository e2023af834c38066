"""Saved conversations and answer feedback of the web chat: one SQLite file (settings.chat_db, by default
`chat.sqlite3` in the index folder). Each conversation belongs to an owner key (a random per-browser id, or
the logged-in user); every read and write is filtered by that key, so a conversation id alone opens
nothing. Everything is bounded: conversations per owner and in all, turns per conversation, text lengths.
Answers are stored as plain JSON (no pickle) and rendered again when a conversation is reopened."""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError
from .jsonable import citation_dict
from .records import Answer, Citation, Hit

MAX_CONVERSATIONS = 50  # per owner: starting one more deletes the least recently used
MAX_ALL_CONVERSATIONS = 20_000  # in the whole file, whatever the number of browsers
MAX_TURNS = 100  # per conversation
MAX_TITLE_CHARS = 80
MAX_COMMENT_CHARS = 1000
MAX_HITS_KEPT = 5  # passages kept with a stored answer (what an abstention shows)
_OWNER = re.compile(r"^[bu]:[\w.@+-]{1,128}$")
_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS conversations_owner ON conversations (owner, updated);
CREATE TABLE IF NOT EXISTS turns (conversation TEXT NOT NULL, n INTEGER NOT NULL, question TEXT NOT NULL,
    answer TEXT NOT NULL, feedback INTEGER, comment TEXT NOT NULL DEFAULT '', at REAL NOT NULL,
    PRIMARY KEY (conversation, n));
"""


def new_browser_id() -> str:
    return secrets.token_urlsafe(24)


def valid_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ID.match(value))


def owner_key(browser_id: str | None, username: str | None = None) -> str:
    """The key a browser's (or a logged-in user's) conversations are stored under."""
    if username:
        return "u:" + re.sub(r"[^\w.@+-]", "_", username)[:128]
    if not valid_id(browser_id):
        raise InputError("browser id: not a valid id")
    return f"b:{browser_id}"


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    id: str
    title: str
    updated: float
    turns: int


@dataclass(frozen=True, slots=True)
class StoredTurn:
    n: int  # 1-based
    question: str
    answer: Answer
    feedback: int | None = None  # 1 thumbs up, -1 thumbs down
    comment: str = ""


class ConversationStore:
    """Thread-safe; one connection per call (SQLite serialises the writers)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._db() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = sqlite3.connect(self.path, timeout=10)
            try:
                with db:
                    yield db
            finally:
                db.close()

    def secret(self) -> str:
        """A random secret made once per store (Gradio encrypts the browser's id with it)."""
        with self._db() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()
            if row:
                return str(row[0])
            value = secrets.token_urlsafe(32)
            db.execute("INSERT INTO meta VALUES ('secret', ?)", (value,))
            return value

    # -- conversations -------------------------------------------------------------------------------------
    def create(self, owner: str, title: str = "New conversation") -> str:
        _check_owner(owner)
        cid = secrets.token_urlsafe(18)
        now = time.time()
        with self._db() as db:
            db.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?)", (cid, owner, _title(title), now, now))
            old = db.execute("SELECT id FROM conversations WHERE owner = ? ORDER BY updated DESC LIMIT -1 OFFSET ?",
                             (owner, MAX_CONVERSATIONS)).fetchall()
            old += db.execute("SELECT id FROM conversations ORDER BY updated DESC LIMIT -1 OFFSET ?",
                              (MAX_ALL_CONVERSATIONS,)).fetchall()
            for (gone,) in old:
                db.execute("DELETE FROM turns WHERE conversation = ?", (gone,))
                db.execute("DELETE FROM conversations WHERE id = ?", (gone,))
        return cid

    def list(self, owner: str) -> list[ConversationInfo]:
        _check_owner(owner)
        with self._db() as db:
            rows = db.execute("SELECT c.id, c.title, c.updated, (SELECT COUNT(*) FROM turns t WHERE "
                              "t.conversation = c.id) FROM conversations c WHERE owner = ? ORDER BY updated DESC",
                              (owner,)).fetchall()
        return [ConversationInfo(i, t, u, n) for i, t, u, n in rows]

    def owns(self, owner: str, cid: str | None) -> bool:
        if not valid_id(cid):
            return False
        with self._db() as db:
            return db.execute("SELECT 1 FROM conversations WHERE id = ? AND owner = ?", (cid, owner)).fetchone() \
                is not None

    def rename(self, owner: str, cid: str, title: str) -> None:
        self._require(owner, cid)
        with self._db() as db:
            db.execute("UPDATE conversations SET title = ? WHERE id = ? AND owner = ?", (_title(title), cid, owner))

    def delete(self, owner: str, cid: str) -> None:
        self._require(owner, cid)
        with self._db() as db:
            db.execute("DELETE FROM turns WHERE conversation = ?", (cid,))
            db.execute("DELETE FROM conversations WHERE id = ? AND owner = ?", (cid, owner))

    # -- turns ---------------------------------------------------------------------------------------------
    def turns(self, owner: str, cid: str) -> list[StoredTurn]:
        self._require(owner, cid)
        with self._db() as db:
            rows = db.execute("SELECT n, question, answer, feedback, comment FROM turns WHERE conversation = ? "
                              "ORDER BY n", (cid,)).fetchall()
        return [StoredTurn(n, q, answer_from_json(json.loads(a)), fb, c) for n, q, a, fb, c in rows]

    def add_turn(self, owner: str, cid: str, answer: Answer) -> int:
        """Append an answered question; its number. The first question names the conversation."""
        self._require(owner, cid)
        with self._db() as db:
            (count,) = db.execute("SELECT COUNT(*) FROM turns WHERE conversation = ?", (cid,)).fetchone()
            if count >= MAX_TURNS:
                raise InputError(f"this conversation has {MAX_TURNS} turns, the most kept; start a new one")
            n = count + 1
            db.execute("INSERT INTO turns (conversation, n, question, answer, at) VALUES (?, ?, ?, ?, ?)",
                       (cid, n, answer.question, json.dumps(answer_to_json(answer)), time.time()))
            title = _title(answer.question)
            db.execute("UPDATE conversations SET updated = ?, title = CASE WHEN ? = 1 THEN ? ELSE title END "
                       "WHERE id = ?", (time.time(), n, title, cid))
        return n

    def drop_last_turn(self, owner: str, cid: str) -> None:
        self._require(owner, cid)
        with self._db() as db:
            db.execute("DELETE FROM turns WHERE conversation = ? AND n = (SELECT MAX(n) FROM turns WHERE "
                       "conversation = ?)", (cid, cid))

    def set_feedback(self, owner: str, cid: str, n: int, rating: int | None = None,
                     comment: str | None = None) -> None:
        """Record 👍 (1) or 👎 (-1) and/or a comment for turn `n`."""
        self._require(owner, cid)
        if rating not in (None, 1, -1):
            raise InputError("feedback: must be 1 or -1")
        if comment is not None and len(comment) > MAX_COMMENT_CHARS:
            raise InputError(f"comment: {len(comment)} characters; the limit is {MAX_COMMENT_CHARS}")
        with self._db() as db:
            if rating is not None:
                db.execute("UPDATE turns SET feedback = ? WHERE conversation = ? AND n = ?", (rating, cid, n))
            if comment is not None:
                db.execute("UPDATE turns SET comment = ? WHERE conversation = ? AND n = ?", (comment, cid, n))

    def thumbs_down(self) -> list[tuple[str, StoredTurn]]:
        """Every turn rated 👎, in all conversations: (conversation id, turn), oldest first."""
        with self._db() as db:
            rows = db.execute("SELECT conversation, n, question, answer, feedback, comment FROM turns "
                              "WHERE feedback = -1 ORDER BY at").fetchall()
        return [(c, StoredTurn(n, q, answer_from_json(json.loads(a)), fb, cm)) for c, n, q, a, fb, cm in rows]

    def _require(self, owner: str, cid: str) -> None:
        _check_owner(owner)
        if not self.owns(owner, cid):
            raise InputError("conversation: not found")


def _check_owner(owner: str) -> None:
    if not _OWNER.match(owner or ""):
        raise InputError("owner: not a valid key")


def _title(text: str) -> str:
    line = " ".join((text or "").split()) or "New conversation"
    return line if len(line) <= MAX_TITLE_CHARS else line[:MAX_TITLE_CHARS - 1].rstrip() + "…"


def answer_to_json(a: Answer) -> dict[str, Any]:
    return {"question": a.question, "text": a.text, "abstained": a.abstained, "mode": a.mode,
            "citations": [citation_dict(c) for c in a.citations], "notices": list(a.notices),
            "unsupported": list(a.unsupported),
            "hits": [{"rank": h.rank, "score": h.score, "source": h.source, "start": h.start, "end": h.end,
                      "text": h.text, "headings": list(h.headings), "page": h.page} for h in a.hits[:MAX_HITS_KEPT]]}


def answer_from_json(d: dict[str, Any]) -> Answer:
    cites = tuple(Citation(int(c["n"]), str(c["source"]), int(c["start"]), int(c["end"]), str(c["quote"]),
                           tuple(c.get("headings", ())), c.get("page"), int(c.get("passage_start", 0)),
                           int(c.get("passage_end", 0))) for c in d.get("citations", []))
    hits = tuple(Hit(int(h["rank"]), float(h["score"]), str(h["source"]), int(h["start"]), int(h["end"]),
                     str(h["text"]), tuple(h.get("headings", ())), h.get("page")) for h in d.get("hits", []))
    return Answer(str(d.get("question", "")), str(d.get("text", "")), cites, bool(d.get("abstained")), hits,
                  str(d.get("mode", "extractive")), tuple(d.get("notices", ())), tuple(d.get("unsupported", ())))
