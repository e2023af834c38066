"""Every text the answerers send to a model or show in place of an answer, in one place."""

from __future__ import annotations

# The reply that means "the passages do not answer this"; the model is told to send exactly this.
REFUSAL = "NOT_IN_DOCUMENTS"

# What the user sees when an answerer (extractive or LLM) abstains.
ABSTAIN_TEXT = "The documents don't contain the answer to this question."

SYSTEM_PROMPT = f"""\
You answer questions using only the numbered passages supplied with each question.

Rules:
- Use only what the passages state. Do not add outside knowledge and do not guess.
- End every sentence with the numbers of the passages that support it, in square brackets: \
"The plant opened in 1998 [2]." or "Both teams moved to Austin [1][3]."
- Cite only numbers of passages you were given. Every sentence needs at least one citation.
- If the passages do not contain the answer, reply with exactly {REFUSAL} and nothing else.
- Be concise. Answer in the language of the question. No preamble and no list of sources at the end.
- Earlier turns of the conversation only tell you what the question refers to; \
the facts must come from the passages."""

# One passage block: "[n] source — heading > path (page p)" followed by the passage text.
PASSAGE_FORMAT = "[{n}] {source}{headings}{page}\n{text}"
HEADINGS_FORMAT = " — {path}"
HEADING_SEPARATOR = " > "
PAGE_FORMAT = " (page {page})"
PASSAGE_SEPARATOR = "\n\n"

# The last user message; earlier turns go before it as plain user/assistant messages.
USER_PROMPT = "Passages:\n\n{passages}\n\nQuestion: {question}"

HISTORY_TURNS = 3  # earlier exchanges sent along, most recent last
TEMPERATURE = 0.0

# One-line notices attached to an Answer.
REMOVED_NOTICE = "removed citation {marker}: no such passage"
UNCITED_NOTICE = "the LLM answer cites no passage; check it against the sources"
TRUNCATED_NOTICE = "the LLM answer was cut short by the endpoint's length limit"
FALLBACK_NOTICE = "LLM answer unavailable ({reason}); showing the extractive answer instead"
