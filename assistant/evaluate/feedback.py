"""Thumbs-down answers of the web chat as draft evaluation questions: the question, the sources and quotes
the answer cited and the user's comment, with `gold_quotes` left for a person to fill. A draft line is
refused by the question loader until its `draft` field is deleted, so an unchecked draft is never scored."""

from __future__ import annotations

import json
from pathlib import Path

from ..conversations import ConversationStore

DRAFT_NOTE = ("thumbs-down in the chat: write the right answer, put the sentences that prove it in gold_quotes "
              "(and their files in gold_sources, or set answerable to false and empty both), then delete this "
              "field")


def feedback_drafts(store: ConversationStore) -> list[dict]:
    drafts = []
    for cid, turn in store.thumbs_down():
        a = turn.answer
        sources = list(dict.fromkeys(c.source for c in a.citations))
        drafts.append({"id": f"feedback-{cid[:8]}-{turn.n}", "question": turn.question, "gold_sources": sources,
                       "gold_quotes": [], "answer": "", "answerable": not a.abstained, "kind": "feedback",
                       "cited_quotes": [c.quote for c in a.citations], "comment": turn.comment,
                       "draft": DRAFT_NOTE})
    return drafts


def export_feedback(db: Path, out: Path) -> int:
    """Write the drafts to `out` as JSONL; how many."""
    if not Path(db).is_file():
        from ..errors import ConfigError

        raise ConfigError(f"{db}: no saved chat feedback (set chat_db or --index-dir to the chat's index)")
    drafts = feedback_drafts(ConversationStore(db))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in drafts), encoding="utf-8")
    return len(drafts)
