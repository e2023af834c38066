"""The chat's saved conversations and feedback: owner keys select only their own data, bounds hold, answers
come back as they were stored, and thumbs-down turns export as draft evaluation questions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant import conversations as conv
from assistant.cli import main
from assistant.conversations import ConversationStore, new_browser_id, owner_key
from assistant.errors import InputError
from assistant.evaluate.questions import QuestionFileError, load_questions
from assistant.records import Answer, Citation, Hit

CITE = Citation(1, "bakery.txt", 19, 80, "The Zephyr Bakery in Tromso was founded by Ingrid Solberg in 1987.",
                ("The Zephyr Bakery",), None, 0, 200)


def _answer(question: str = "Who founded the bakery?", abstained: bool = False) -> Answer:
    hit = Hit(1, 0.5, "bakery.txt", 0, 200, "The Zephyr Bakery ... <script>x</script>", ("The Zephyr Bakery",))
    return Answer(question, "" if abstained else f"{CITE.quote} [1]", () if abstained else (CITE,), abstained,
                  (hit,), notices=("a notice",))


@pytest.fixture
def store(tmp_path: Path) -> ConversationStore:
    return ConversationStore(tmp_path / "chat.sqlite3")


def test_answers_come_back_as_stored_and_the_first_question_names_the_conversation(store) -> None:
    me = owner_key(new_browser_id())
    cid = store.create(me)
    assert store.add_turn(me, cid, _answer()) == 1
    assert store.add_turn(me, cid, _answer("And when?")) == 2
    turns = store.turns(me, cid)
    assert [t.question for t in turns] == ["Who founded the bakery?", "And when?"]
    assert turns[0].answer.citations == (CITE,) and turns[0].answer.notices == ("a notice",)
    assert turns[0].answer.hits[0].text.endswith("<script>x</script>")
    assert [(c.title, c.turns) for c in store.list(me)] == [("Who founded the bakery?", 2)]
    store.rename(me, cid, "  Bakery\n history " + "x" * 200)
    assert store.list(me)[0].title.startswith("Bakery history x") and len(store.list(me)[0].title) == 80
    store.drop_last_turn(me, cid)
    assert len(store.turns(me, cid)) == 1


def test_another_browser_cannot_read_change_or_delete_a_conversation(store) -> None:
    me, other = owner_key(new_browser_id()), owner_key(new_browser_id())
    cid = store.create(me)
    store.add_turn(me, cid, _answer())
    assert store.list(other) == [] and not store.owns(other, cid)
    for call in (lambda: store.turns(other, cid), lambda: store.rename(other, cid, "mine"),
                 lambda: store.delete(other, cid), lambda: store.add_turn(other, cid, _answer()),
                 lambda: store.set_feedback(other, cid, 1, -1)):
        with pytest.raises(InputError, match="conversation: not found"):
            call()
    assert len(store.turns(me, cid)) == 1 and store.list(me)[0].title == "Who founded the bakery?"
    with pytest.raises(InputError):
        owner_key("short")  # a made-up id that is not ours is refused before any lookup
    with pytest.raises(InputError):
        owner_key("x' OR '1'='1" * 3)


def test_bounds(store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conv, "MAX_CONVERSATIONS", 3)
    monkeypatch.setattr(conv, "MAX_TURNS", 2)
    me = owner_key(new_browser_id())
    ids = [store.create(me) for _ in range(5)]
    assert {c.id for c in store.list(me)} == set(ids[2:])  # the oldest went
    store.add_turn(me, ids[-1], _answer())
    store.add_turn(me, ids[-1], _answer())
    with pytest.raises(InputError, match="2 turns, the most kept"):
        store.add_turn(me, ids[-1], _answer())
    with pytest.raises(InputError, match="the limit is 1000"):
        store.set_feedback(me, ids[-1], 1, comment="x" * 1001)


def test_thumbs_down_turns_export_as_drafts_the_loader_refuses_until_filled(tmp_path: Path, capsys) -> None:
    index = tmp_path / "index"
    store = ConversationStore(index / "chat.sqlite3")
    me = owner_key(new_browser_id())
    cid = store.create(me)
    store.add_turn(me, cid, _answer())
    store.add_turn(me, cid, _answer("What is the capital of France?", abstained=True))
    store.add_turn(me, cid, _answer("Is it open on Tuesdays?"))
    store.set_feedback(me, cid, 1, 1)
    store.set_feedback(me, cid, 3, -1, comment="It is closed on Tuesdays; wrong sentence cited.")
    store.set_feedback(me, cid, 2, -1)
    out = tmp_path / "drafts.jsonl"
    assert main(["eval", "--index-dir", str(index), "--export-feedback", str(out)]) == 0
    assert "wrote 2 draft questions" in capsys.readouterr().out
    drafts = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [d["question"] for d in drafts] == ["What is the capital of France?", "Is it open on Tuesdays?"]
    first = drafts[1]
    assert first["gold_quotes"] == [] and first["cited_quotes"] == [CITE.quote]
    assert first["gold_sources"] == ["bakery.txt"] and first["comment"].startswith("It is closed")
    assert "gold_quotes" in first["draft"] and drafts[0]["answerable"] is False
    with pytest.raises(QuestionFileError, match=r"drafts.jsonl:1: draft: thumbs-down in the chat"):
        load_questions(out)
    # Filled in by a person, the draft is an ordinary question.
    first.pop("draft")
    first.update(gold_quotes=["The bakery closes every Tuesday."], answer="No, it is closed on Tuesdays.")
    out.write_text(json.dumps(first) + "\n", encoding="utf-8")
    assert load_questions(out)[0].gold_quotes == ("The bakery closes every Tuesday.",)
