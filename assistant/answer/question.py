"""What a question asks for, in the manner of classic open-domain QA systems: the expected answer type
(a count, a share, a date) and the focus noun of "what is the X of Y" questions. English only.

The extractive answerer uses it to abstain on near-miss questions: a question about the documents' topic
whose specific fact the documents do not state ("What is the shop's annual revenue?"), or about a named
thing they never mention ("What port does MySQL use?" over the PostgreSQL manual), which a bi-encoder
alone scores as confidently as a real answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_AUX = r"(?:is|are|was|were|do|does|did|have|has|had|will|would|can|could|should|may|might)"
# "How many users ..." (the words after "many" name what is counted)
_COUNT = re.compile(rf"\bhow many\b(?P<np>(?:\s+(?!{_AUX}\b)[\w-]+){{0,3}})", re.I)
# "How much does it cost", "How much is she paid", "What is the annual revenue" (not "How much say ...")
_MONEY = re.compile(
    rf"\bhow much (?={_AUX}\b)|\b(?:revenue|revenues|salary|income|profit|profits|price|cost|"
    r"costs|budget|valuation|net worth|market cap\w*|turnover|earnings)\b",
    re.I,
)
_PERCENT_Q = re.compile(
    r"\b(?:what|which) (?:share|percentage|percent|fraction|proportion)\b|"
    r"\bhow (?:large|big) (?:a )?(?:share|portion|fraction)\b",
    re.I,
)
_DATE_Q = re.compile(
    r"^\s*when (?:did|was|were|will)\b|\b(?:what|which) (?:year|date|month|day)\b|\bin what year\b", re.I
)

_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
    r"hundred|hundreds|thousand|thousands|million|millions|billion|billions|dozen|dozens|"
    r"half|single|double|triple|decade|decades|century"
)
_COUNT_A = re.compile(rf"\$|€|£|\b\d[\d,.]*\b(?<!\b1[5-9]\d\d)(?<!\b20\d\d)|\b(?:{_NUMBER_WORDS})\b", re.I)
_MONEY_A = re.compile(
    r"[$€£¥]\s?\d|\b\d[\d,.]*\s?(?:k|m|bn|million|billion|thousand|trillion)\b|"
    r"\b(?:dollars?|euros?|pounds?|yuan|usd|eur|gbp)\b",
    re.I,
)
_PERCENT_A = re.compile(
    r"\d\s?%|\bper ?cent\b|\bhalf\b|\bthird\b|\bquarter\b|\bmajority\b|\bminority\b|"
    r"\bmost\b|\bfew\b",
    re.I,
)
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_DATE_A = re.compile(
    rf"\b(?:1[5-9]\d\d|20\d\d)s?\b|\b(?:{_MONTHS})\b|\b\d{{1,2}}/\d{{1,2}}/\d{{2,4}}\b|"
    r"\b(?:yesterday|today|last (?:year|month|week)|next (?:year|month|week))\b",
    re.I,
)

_FOCUS_PATTERNS = (
    # "Who is the CEO of ByteDance?", "What was the capital of France?"
    re.compile(
        r"^\s*(?:what|who|which)(?:'s|’s| is| are| was| were) (?:the |a |an )?"
        r"(?P<np>[\w -]+?) (?:of|for|in|at|on|from|behind|by|to)\b(?P<subject>[^?]*)",
        re.I,
    ),
    # "What is TikTok Shop's return policy?"
    re.compile(r"^\s*(?:what|who)(?:'s|’s| is| are| was| were) [\w .&-]+?(?:'s|’s) (?P<np>[\w -]+?)\s*\??$", re.I),
    # "Which programming language is the app written in?"
    re.compile(r"^\s*(?:which|what) (?P<np>[\w -]+?) (?:is|are|was|were) ", re.I),
)
# Heads too general to be a missing fact by themselves.
_GENERIC = frozenset(
    [
        "name",
        "names",
        "thing",
        "things",
        "way",
        "ways",
        "kind",
        "type",
        "part",
        "one",
        "reason",
        "reasons",
        "role",
        "purpose",
        "point",
        "difference",
        "differences",
        "relationship",
        "meaning",
        "example",
        "examples",
        "main",
        "idea",
        "goal",
        "goals",
        "result",
        "results",
        "effect",
        "effects",
        "impact",
        "problem",
        "problems",
        "issue",
        "issues",
        "challenge",
        "challenges",
        "risk",
        "risks",
        "plan",
        "plans",
        "strategy",
        "status",
        "situation",
        "case",
        "else",
        "benefit",
        "benefits",
        "advantage",
        "advantages",
        "use",
        "uses",
    ]
)


@dataclass(frozen=True)
class Name:
    """A named thing a question asks about, as written: a proper name ("Linus Torvalds"), an identifier
    ("shared_buffers", "re.match()", "UnboundLocalError"), a quoted term, or a name with a version
    ("Python 3.19": `base` "Python", `version` "3.19")."""

    text: str
    kind: str  # "proper", "code", "quoted" or "version"
    base: str = ""  # for "version": the name the number belongs to
    version: str = ""


@dataclass(frozen=True)
class QuestionInfo:
    expected: str | None  # "count", "money", "percent", "date" or None
    counted: tuple[str, ...] = ()  # words after "how many": the sentence should name what is counted
    focus: str = ""  # head noun of "what is the X of Y" questions
    subject: tuple[str, ...] = ()  # the proper names of Y in "what is the X of Y" ("France")
    names: tuple[Name, ...] = ()  # every named thing of the question, in order


def analyze(question: str) -> QuestionInfo:
    q = question.strip()
    expected = None
    counted: tuple[str, ...] = ()
    if _PERCENT_Q.search(q):
        expected = "percent"
    elif _DATE_Q.search(q):
        expected = "date"
    elif m := _COUNT.search(q):
        expected = "count"
        counted = tuple((m.group("np") or "").lower().split())
    elif _MONEY.search(q):
        expected = "money"
    focus = ""
    subject: tuple[str, ...] = ()
    for pat in _FOCUS_PATTERNS:
        if m := pat.search(q):
            words = [w for w in re.findall(r"[\w-]+", m.group("np").lower()) if w not in ("the", "a", "an")]
            if words and words[-1] not in _GENERIC and len(words) <= 4:
                focus = words[-1]
            if "subject" in m.groupdict():
                subject = tuple(w for w in re.findall(r"[\w-]+", m.group("subject") or "") if w[:1].isupper())
            break
    return QuestionInfo(expected, counted, focus, subject, names(q))


_QUOTED = re.compile(r"`([^`]+)`|\"([^\"]+)\"|“([^”]+)”|‘([^’]+)’|(?<!\w)'([^']+)'(?!\w)")
# A word, an identifier (dots, underscores, a call's "()"), or a version number.
_WORDLIKE = re.compile(r"\w(?:[\w.-]*\w)?(?:\(\))?")
_VERSION = re.compile(r"\d{1,2}(?:\.\d{1,3}){0,2}")
_CAMEL = re.compile(r"[a-z][A-Z]|[A-Z]{2}[a-z]")
_SENTENCE_END = re.compile(r"[.?!:;]\s*$")
_NOT_NAMES = frozenset(["I", "I'm", "I've", "I'd"])
# Nationality and region adjectives describe rather than name ("the American team" for the documents'
# "US team"): a reader's paraphrase, not a thing the documents must mention.
_DEMONYMS = frozenset(
    "African American Arab Asian Australian Austrian Belgian Brazilian British Canadian Chinese Czech Danish "
    "Dutch English European French German Greek Indian Irish Israeli Italian Japanese Korean Latin Mexican "
    "Nordic Norwegian Polish Portuguese Russian Scandinavian Scottish Spanish Swedish Swiss Taiwanese Thai "
    "Turkish Ukrainian Vietnamese Western Eastern Northern Southern".split())


# Generic head words of place and organisation names ("Washington State", "Python Software Foundation"):
# the name stands for its other words.
GENERIC_HEADS = frozenset(
    "state states city county province region island islands university college street avenue inc corp "
    "corporation company foundation group project team lab labs".split())


def _is_code(word: str) -> bool:
    return ("_" in word or word.endswith("()") or bool(_CAMEL.search(word))
            or bool(re.search(r"[A-Za-z]\.\w|\w\.[A-Za-z]", word)))


# "What is a hot standby?", "What does CREATE EXTENSION do?", "What is pg_basebackup used for?"
_DEFINE_Q = re.compile(r"^\s*what (?:is|are|does|do) (?:an? |the )?(?P<term>[^?]+?)"
                       r"(?: (?:do|does|mean|means|used for|for))?\s*\??\s*$", re.I)


def defined_term(question: str) -> str:
    """The term a "what is X" question asks to define, as written (at most four words), or ""."""
    m = _DEFINE_Q.match(re.sub(r"\s+(?:actually|really|exactly)\b", "", question, flags=re.I))
    return m.group("term") if m and len(m.group("term").split()) <= 4 else ""


def names(question: str) -> tuple[Name, ...]:
    """The named things of a question: quoted terms; identifiers (anywhere); capitalised words that do not
    start a sentence, adjacent ones joined ("Linus Torvalds"); a name followed by a version number."""
    out: list[Name] = []
    spans: list[tuple[int, int]] = []
    for m in _QUOTED.finditer(question):
        text = next(g for g in m.groups() if g is not None).strip()
        if text:
            out.append(Name(text, "code" if _is_code(text) and " " not in text else "quoted"))
            spans.append(m.span())
    words = [m for m in _WORDLIKE.finditer(question) if not any(a <= m.start() < b for a, b in spans)]
    run: list[re.Match[str]] = []  # adjacent capitalised words

    def flush() -> None:
        if run:
            out.append(Name(question[run[0].start():run[-1].end()], "proper"))
            run.clear()

    for i, m in enumerate(words):
        w = m.group()
        initial = not question[:m.start()].strip() or bool(_SENTENCE_END.search(question[:m.start()]))
        prev_end = words[i - 1].end() if i else -1
        if run and (question[prev_end:m.start()].strip() or prev_end != run[-1].end()):
            flush()
        if _VERSION.fullmatch(w) and run and not question[run[-1].end():m.start()].strip():
            base = question[run[0].start():run[-1].end()]
            out.append(Name(f"{base} {w}", "version", base, w))
            run.clear()
            continue
        if _is_code(w) and not w[:1].isdigit():
            flush()
            if i + 1 < len(words) and _VERSION.fullmatch(words[i + 1].group()) \
                    and not question[m.end():words[i + 1].start()].strip():
                run.append(m)  # "PostgreSQL 23": the number decides on the next word
                continue
            out.append(Name(w, "code"))
        elif w[:1].isupper() and not initial and w not in _NOT_NAMES and w not in _DEMONYMS:
            run.append(m)
        else:
            flush()
    flush()
    return tuple(out)


def has_type(sentence: str, expected: str | None) -> bool:
    """Whether a sentence contains something of the expected answer type."""
    if expected is None:
        return True
    pattern = {"count": _COUNT_A, "money": _MONEY_A, "percent": _PERCENT_A, "date": _DATE_A}[expected]
    return bool(pattern.search(sentence))


# "PostgreSQL 15", "Python 3.11", "PostgreSQL version 9.6": a word and the number that follows it.
_MENTION = re.compile(r"\b([A-Za-z][\w+-]*)\s+(?:version\s+)?v?(\d{1,2}(?:\.\d{1,3}){0,2})(?![\d]|\.\d)")


def version_mentions(text: str) -> set[tuple[str, str]]:
    """Every (name in lower case, version) a text writes, such as ("python", "3.11")."""
    return {(a.lower(), b) for a, b in _MENTION.findall(text)}


def mentions_version(found: set[tuple[str, str]], name: Name) -> bool:
    """Whether `found` (from version_mentions) holds `name`'s version, or one of its minor releases
    ("Python 3" is in a text that writes "Python 3.11"). The name's last word is what the text has
    before the number ("Amazon Aurora 3" → "aurora")."""
    word = name.base.split()[-1].lower() if name.base else ""
    return any(w == word and (v == name.version or v.startswith(name.version + ".")) for w, v in found)
