"""A follow-up question with its pronoun replaced by what the previous question was about.

"Can I create temporary tables on it?" after "What is a hot standby?" searches as "Can I create temporary
tables on hot standby?"; "Does it block other sessions?" after "What does VACUUM FULL do ...?" as "Does
VACUUM FULL block other sessions?". The subject is the first name of the previous question (an
identifier, a capitalised or quoted term: `answer.question.names`) or else the term it asked to define
("What is a hot standby?") or to act on ("How do I create a virtual environment?"). No subject, or no
pronoun: no rewrite (None).
"""

from __future__ import annotations

import re

from ..answer.question import defined_term, names

_PRONOUN = re.compile(r"\b(?:(it|they|them|he|him|she)|(its|their|his|her))\b", re.I)
_HOW = re.compile(r"^\s*how (?:do|can|should|would) (?:i|you|we|one) \w+ (?:an? |the |my )?(?P<term>[^?]+?)\s*\??\s*$",
                  re.I)


def subject_of(question: str) -> str:
    found = names(question)
    if found:
        return found[0].text
    if term := defined_term(question):
        return term
    m = _HOW.match(question)
    return m.group("term") if m and len(m.group("term").split()) <= 3 else ""


def resolve(question: str, previous: str) -> str | None:
    """`question` with its first pronoun replaced by the subject of `previous`, or None."""
    subject = subject_of(previous) if previous.strip() else ""
    m = _PRONOUN.search(question)
    if not subject or m is None:
        return None
    repl = subject if m.group(1) else f"{subject}'s"
    return question[: m.start()] + repl + question[m.end():]
