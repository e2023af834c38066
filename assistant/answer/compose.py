"""How far a quote reaches beyond its chosen sentence, so that it says its whole thing.

Manuals split an answer across sentences that lean on each other: "It is good practice to use the with
keyword when dealing with file objects. The advantage is that the file is properly closed ...", "Sorts
are guaranteed to be stable. That means that ...", "Use this approach:" followed by the command. A quote
of the first sentence alone is half an answer, and of the second alone is unclear. So a chosen sentence
is quoted

- with the sentence right after it, in its paragraph, when that one opens by pointing back ("This",
  "That means", "The advantage is", "You can do this by", "In that case", ...);
- with the sentence right before it, in its paragraph, when it opens that way itself;
- with the block it introduces when it ends with a colon and the next block is not prose (code, a command
  line, a short list): at most MAX_BLOCK_CHARS characters and MAX_BLOCK_LINES lines;
- on to the sentence that holds what the question asks for (`finish`, e.g. one that states a default), when
  the quote does not hold it and one of the next FINISH_REACH sentences of its paragraph does: "this
  parameter determines the algorithm to use to encrypt the password. Possible values are ... The default
  is scram-sha-256." answers "which algorithm is used by default?", its first sentence alone does not.

One sentence each way (FINISH_REACH forward for `finish`), in the sentence's paragraph, never over another
quote of the answer. The passage the chunk cut does not limit it (a chunk may end at the colon): the
citation's passage grows to hold the quote. The result is still an exact span `text[start:end]` of the
loaded text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ..quotable import is_statement
from ..sentences import paragraph_spans, sentence_spans

MAX_BLOCK_CHARS = 600
MAX_BLOCK_LINES = 12
FINISH_REACH = 2  # sentences looked ahead for what the question asks for
REACH = 2000  # characters looked at around the sentence: its paragraph and the block after it

# Openings that only make sense after the sentence before them.
LEANS_BACK = re.compile(
    r"(?:This|That|These|Those|Such|Thus|Therefore|Hence|Otherwise|Instead|"
    r"The (?:advantage|disadvantage|reason|result|effect|solution|answer|downside|catch)s?|"
    r"You can do (?:this|that|so)|In (?:this|that|such a|either) case|If so|If not)\b")

# A reST directive that opens a code block: its body follows after a blank line.
_DIRECTIVE = re.compile(r"\.\. (?:code-block|code|sourcecode|highlight|prompt)::[^\n]*(?:\n[ \t]+:[^\n]*)*\Z")

Span = tuple[int, int]


def leans_back(sentence: str) -> bool:
    return LEANS_BACK.match(sentence.lstrip("*_`\"'(")) is not None


def compose(text: str, start: int, end: int, taken: Sequence[Span] = (),
            finish: Callable[[str], object] | None = None) -> Span:
    """The span to quote for the sentence text[start:end]; `taken`: the spans of the other quotes of the
    answer (same document), which this one must not reach into; `finish`: true of a sentence that holds
    what the question asks for, which the quote reaches on to (see above)."""
    ps, pe = max(0, start - REACH), min(len(text), end + REACH)
    para = next(((a, b) for a, b in paragraph_spans(text, ps, pe) if a <= start and end <= b), None)
    if para is None:
        return start, end

    def free(a: int, b: int) -> bool:
        return not any(a < te and ts < b for ts, te in taken)

    sents = sentence_spans(text, *para)
    here = next((i for i, (a, b) in enumerate(sents) if a <= start < b), None)
    new_start, new_end = start, end
    if here is not None:
        if here > 0 and leans_back(text[start:end]) and free(*sents[here - 1]):
            new_start = sents[here - 1][0]
        last = max(i for i, (a, _b) in enumerate(sents) if a < end)
        if last + 1 < len(sents) and leans_back(text[slice(*sents[last + 1])]) and free(*sents[last + 1]):
            new_end = sents[last + 1][1]
        if finish is not None and not finish(text[new_start:new_end]):
            last = max(i for i, (a, _b) in enumerate(sents) if a < new_end)
            for a, b in sents[last + 1:last + 1 + FINISH_REACH]:
                if not free(a, b):
                    break
                if finish(text[a:b]):
                    new_end = b
                    break
    if text[start:new_end].rstrip().endswith(":") and new_end == para[1]:
        blocks = [(a, b) for a, b in paragraph_spans(text, para[1], pe) if a >= para[1]][:2]
        if len(blocks) == 2 and _DIRECTIVE.match(text[slice(*blocks[0])]):
            blocks = [(blocks[0][0], blocks[1][1])]  # ".. code-block:: sh", then the code
        block = blocks[0] if blocks else None
        if block is not None and free(*block) and _is_block(text[block[0]:block[1]]):
            new_end = block[1]
    return new_start, new_end


def _is_block(chunk: str) -> bool:
    """Code, a command line or a list: what a sentence ending in a colon introduces, and short enough. Prose
    ends like a sentence; an SQL statement reads like words but ends with ";" or no full stop at all."""
    if len(chunk) > MAX_BLOCK_CHARS or chunk.count("\n") + 1 > MAX_BLOCK_LINES:
        return False
    last = chunk.rstrip()[-1:]
    return not is_statement(chunk) or last not in ".!?" or chunk.rstrip().endswith(("..", ";"))


def spoken(quote: str) -> str:
    """A composed quote as answer text: its prose on one line, an introduced block below it as written."""
    head, sep, block = (re.split(r"(\n[ \t\r]*\n)", quote, maxsplit=1) + ["", ""])[:3]
    prose = " ".join(head.split())
    if not sep:
        return prose
    lines = block.rstrip().splitlines()
    indent = min((len(x) - len(x.lstrip()) for x in lines[1:] if x.strip()), default=0)
    return "\n".join([prose, lines[0].strip(), *(x[indent:] for x in lines[1:])])
