"""The LLM answerer against a real local HTTP server, and the citation checks on its replies."""

from __future__ import annotations

import random
import time

import pytest

from assistant.answer import prompts
from assistant.answer.grounding import MarkerRewriter, ground
from assistant.answer.llm import LLMAnswerer, build_messages, fallback_notice
from assistant.errors import ConfigError, EndpointError
from assistant.records import Answer, Hit, Turn
from assistant.settings import Settings
from tests.openai_server import Reply, Request, free_port, serve

SHOP = "shop.md"
DOC = (
    "# TikTok Shop\n\n"
    "TikTok launched Shop in the US in 2023. At its peak, TikTok employed about 1,700 people in "
    "Bellevue, Washington. Many of them came directly from Amazon.\n\n"
    "## Leadership\n\n"
    "ByteDance gradually reduced the autonomy of US executives. Leaders with Douyin experience replaced "
    "several of them. The focus shifted to livestream shopping, a strategy proven in China.\n")
DOCS = {SHOP: DOC}
QUESTION = "How many people did TikTok employ in Bellevue?"


def _hit(rank: int, first_words: str, headings: tuple[str, ...]) -> Hit:
    start = DOC.index(first_words)
    end = DOC.index("\n", start)
    return Hit(rank, 1.0 / rank, SHOP, start, end, DOC[start:end], headings, None)


HITS = (_hit(1, "TikTok launched", ("TikTok Shop",)),
        _hit(2, "ByteDance gradually", ("TikTok Shop", "Leadership")))


def _settings(base_url: str, **kw: object) -> Settings:
    return Settings.load(env={}, **{"llm_base_url": base_url, "llm_model": "test-model", **kw})


def _run(answerer: LLMAnswerer, hits=HITS, history=()) -> tuple[list[str], Answer]:
    deltas: list[str] = []
    for item in answerer.stream(QUESTION, hits, history, DOCS):
        if isinstance(item, Answer):
            return deltas, item
        deltas.append(item)
    raise AssertionError("no Answer")


def _check_citations(answer: Answer) -> None:
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    for c in answer.citations:
        assert c.quote and DOC[c.start:c.end] == c.quote
        assert c.passage_start <= c.start < c.end <= c.passage_end
        assert f"[{c.n}]" in answer.text


# -- the streamed answer ---------------------------------------------------------------------------

def test_streamed_answer_arrives_in_pieces_with_checked_citations() -> None:
    # The second passage is cited first, so it becomes [1]; markers are split across pieces.
    pieces = ["ByteDance reduced the autonomy", " of US executives [", "2]. TikTok employed",
              " about 1,700 people in Bellevue, Washington [1", "]."]
    with serve(Reply(content=pieces)) as server:
        deltas, answer = _run(LLMAnswerer(_settings(server.base_url)))

    assert len(deltas) > 1
    assert "".join(deltas) == answer.text
    assert answer.text == ("ByteDance reduced the autonomy of US executives [1]. "
                           "TikTok employed about 1,700 people in Bellevue, Washington [2].")
    assert answer.mode == "llm" and not answer.abstained and answer.hits == HITS
    assert answer.unsupported == () and answer.notices == ()
    assert "llm" in answer.timings_ms
    _check_citations(answer)
    first, second = answer.citations
    assert first.quote == "ByteDance gradually reduced the autonomy of US executives."
    assert (first.passage_start, first.passage_end) == (HITS[1].start, HITS[1].end)
    assert first.headings == ("TikTok Shop", "Leadership")
    assert second.quote == "At its peak, TikTok employed about 1,700 people in Bellevue, Washington."

    (request,) = server.chat_requests
    assert request.body is not None
    assert request.body["stream"] is True and request.body["model"] == "test-model"
    system, user = request.messages
    assert system == {"role": "system", "content": prompts.SYSTEM_PROMPT}
    assert prompts.REFUSAL in system["content"]
    assert user["role"] == "user"
    assert f"[1] {SHOP} — TikTok Shop\nTikTok launched Shop" in user["content"]
    assert f"[2] {SHOP} — TikTok Shop > Leadership\nByteDance gradually" in user["content"]
    assert user["content"].endswith(f"Question: {QUESTION}")


def test_invented_citation_is_removed_and_reported() -> None:
    reply = "TikTok employed about 1,700 people in Bellevue [7]. Many came from Amazon [1, 9]."
    with serve(reply) as server:
        deltas, answer = _run(LLMAnswerer(_settings(server.base_url)))
    assert answer.text == "TikTok employed about 1,700 people in Bellevue. Many came from Amazon [1]."
    assert "".join(deltas) == answer.text
    assert answer.notices == ("removed citation [7]: no such passage",
                              "removed citation [9]: no such passage")
    assert answer.unsupported == ("TikTok employed about 1,700 people in Bellevue.",)
    _check_citations(answer)


def test_sentence_without_marker_is_flagged_unsupported() -> None:
    reply = "TikTok employed about 1,700 people in Bellevue [1]. The office also had a rooftop garden."
    with serve(reply) as server:
        _, answer = _run(LLMAnswerer(_settings(server.base_url)))
    assert answer.unsupported == ("The office also had a rooftop garden.",)
    assert "rooftop garden" in answer.text and not answer.abstained
    _check_citations(answer)


def test_sentence_citing_an_unrelated_passage_is_flagged() -> None:
    reply = "The office had a rooftop garden with tomatoes [2]."
    with serve(reply) as server:
        _, answer = _run(LLMAnswerer(_settings(server.base_url)))
    assert answer.unsupported == ("The office had a rooftop garden with tomatoes [1].",)
    _check_citations(answer)


@pytest.mark.parametrize("pieces", [["NOT_", "IN_DOC", "UMENTS"], ["**NOT_IN_DOCUMENTS**"],
                                    ["NOT_IN_DOCUMENTS. The passages only cover staffing."]])
def test_refusal_sentinel_abstains(pieces: list[str]) -> None:
    with serve(Reply(content=pieces)) as server:
        deltas, answer = _run(LLMAnswerer(_settings(server.base_url)))
    assert deltas == [prompts.ABSTAIN_TEXT]
    assert answer.abstained and answer.text == prompts.ABSTAIN_TEXT
    assert answer.citations == () and answer.unsupported == () and answer.mode == "llm"


def test_answer_that_only_starts_like_the_sentinel_is_shown() -> None:
    with serve(Reply(content=["NOT", "ABLY, TikTok employed about 1,700 people [1]."])) as server:
        deltas, answer = _run(LLMAnswerer(_settings(server.base_url)))
    assert not answer.abstained
    assert "".join(deltas) == answer.text == "NOTABLY, TikTok employed about 1,700 people [1]."


def test_non_streaming_server_is_understood() -> None:
    reply = Reply(content="TikTok employed about 1,700 people in Bellevue [1].", json_only=True)
    with serve(reply) as server:
        deltas, answer = _run(LLMAnswerer(_settings(server.base_url)))
    assert "".join(deltas) == answer.text == "TikTok employed about 1,700 people in Bellevue [1]."
    _check_citations(answer)


def test_answer_drains_the_stream_and_history_is_sent() -> None:
    history = [Turn(f"question {i}", f"answer {i} [{i}].") for i in range(5)] + [Turn("unanswered")]
    with serve("TikTok employed about 1,700 people [1].") as server:
        answer = LLMAnswerer(_settings(server.base_url)).answer(QUESTION, HITS, history, DOCS)
    assert answer.text == "TikTok employed about 1,700 people [1]."
    roles = [m["role"] for m in server.chat_requests[0].messages]
    assert roles == ["system"] + ["user", "assistant"] * prompts.HISTORY_TURNS + ["user"]
    messages = server.chat_requests[0].messages
    assert messages[1] == {"role": "user", "content": "question 2"}
    assert messages[2] == {"role": "assistant", "content": "answer 2."}  # old markers name other passages


def test_truncated_answer_gets_a_notice() -> None:
    with serve(Reply(content="TikTok employed about 1,700 people [1].", finish_reason="length")) as server:
        _, answer = _run(LLMAnswerer(_settings(server.base_url)))
    assert answer.notices == (prompts.TRUNCATED_NOTICE,)


def test_no_passages_abstains_without_asking() -> None:
    with serve("should not be asked [1].") as server:
        deltas, answer = _run(LLMAnswerer(_settings(server.base_url)), hits=())
    assert answer.abstained and deltas == [prompts.ABSTAIN_TEXT]
    assert server.chat_requests == []


# -- failures ----------------------------------------------------------------------------------------

def _one_line_error(answerer: LLMAnswerer) -> str:
    with pytest.raises(EndpointError) as info:
        _run(answerer)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_endpoint_down_fails_fast_with_one_line() -> None:
    base = f"http://127.0.0.1:{free_port()}/v1"
    t0 = time.perf_counter()
    message = _one_line_error(LLMAnswerer(_settings(base)))
    assert time.perf_counter() - t0 < 3
    assert message == f"LLM endpoint {base} unreachable: connection refused"


def test_http_500_is_an_endpoint_error() -> None:
    with serve(Reply(status=500, error="model crashed\nwhile loading")) as server:
        message = _one_line_error(LLMAnswerer(_settings(server.base_url)))
    assert message == f"LLM endpoint {server.base_url} answered HTTP 500: model crashed while loading"


def test_failure_mid_stream_is_an_endpoint_error() -> None:
    with serve(Reply(content=["TikTok employed ", "about 1,700 people"], cut=True)) as server:
        deltas: list[str] = []
        with pytest.raises(EndpointError, match="stopped mid-answer"):
            for item in LLMAnswerer(_settings(server.base_url)).stream(QUESTION, HITS, (), DOCS):
                deltas.append(item)  # type: ignore[arg-type]
    assert deltas and not any(isinstance(d, Answer) for d in deltas)


def test_slow_endpoint_times_out() -> None:
    with serve(Reply(content="late [1].", delay=3)) as server:
        t0 = time.perf_counter()
        message = _one_line_error(LLMAnswerer(_settings(server.base_url, llm_timeout=0.3)))
        assert time.perf_counter() - t0 < 2
    assert message.endswith("unreachable: no answer within 0.3 s")


def test_empty_answer_is_an_endpoint_error() -> None:
    with serve(Reply(content=["", "  "])) as server:
        assert _one_line_error(LLMAnswerer(_settings(server.base_url))).endswith("returned an empty answer")


def test_rate_limit_is_reported() -> None:
    def script(request: Request) -> Reply:
        return Reply(status=429, error="Rate limit reached")

    with serve(script) as server:
        message = _one_line_error(LLMAnswerer(_settings(server.base_url)))
    assert message.endswith("answered HTTP 429: Rate limit reached")


def test_bearer_key_is_sent_when_configured() -> None:
    with serve("TikTok employed about 1,700 people [1].", api_key="sk-test") as server:
        _, answer = _run(LLMAnswerer(_settings(server.base_url, llm_api_key="sk-test")))
        assert answer.text.startswith("TikTok")
        assert server.chat_requests[-1].headers["Authorization"] == "Bearer sk-test"

        message = _one_line_error(LLMAnswerer(_settings(server.base_url)))
        assert "Authorization" not in server.chat_requests[-1].headers
        assert message.endswith("answered HTTP 401: Incorrect API key provided")


def test_fallback_notice_and_bad_url() -> None:
    assert fallback_notice(EndpointError("LLM endpoint x unreachable: connection refused")) == (
        "LLM answer unavailable (LLM endpoint x unreachable: connection refused); "
        "showing the extractive answer instead")
    with pytest.raises(ConfigError, match="llm_base_url"):
        LLMAnswerer(_settings("localhost:11434/v1"))
    with pytest.raises(EndpointError, match="no LLM endpoint configured"):
        LLMAnswerer(Settings.load(env={})).answer(QUESTION, HITS)


# -- status ------------------------------------------------------------------------------------------

def test_status_up_down_and_not_configured() -> None:
    assert LLMAnswerer(Settings.load(env={})).status() == "not configured"

    base = f"http://127.0.0.1:{free_port()}/v1"
    t0 = time.perf_counter()
    assert LLMAnswerer(_settings(base)).status() == "unreachable: connection refused"
    assert time.perf_counter() - t0 < 3

    with serve("unused", models=("test-model", "other")) as server:
        assert LLMAnswerer(_settings(server.base_url)).status() == f"ok: test-model at {server.base_url}"
        missing = LLMAnswerer(_settings(server.base_url, llm_model="absent")).status()
        assert missing == f"ok: absent at {server.base_url} (not in the endpoint's model list)"
        unnamed = LLMAnswerer(Settings.load(env={}, llm_base_url=server.base_url))
        assert unnamed.status() == f"ok: test-model at {server.base_url}"
        assert [r.path for r in server.requests] == ["/v1/models"] * 3

        wrong_path = LLMAnswerer(_settings(server.base_url.removesuffix("/v1")))
        assert wrong_path.status().startswith("unreachable: /models answered HTTP 404")

    with serve("unused", api_key="sk-test") as server:
        assert LLMAnswerer(_settings(server.base_url)).status() == (
            "unreachable: /v1/models answered HTTP 401: Incorrect API key provided")


def test_unnamed_model_uses_the_first_listed() -> None:
    with serve("TikTok employed about 1,700 people [1].", models=("only-model",)) as server:
        LLMAnswerer(Settings.load(env={}, llm_base_url=server.base_url)).answer(QUESTION, HITS)
        assert server.chat_requests[0].body["model"] == "only-model"  # type: ignore[index]


# -- grounding without HTTP --------------------------------------------------------------------------

def test_marker_forms_are_parsed_and_renumbered() -> None:
    text = "Leaders changed [2, 1]. Staff came from Amazon [1][2]. Bellevue had 1,700 people [ 1 ]."
    g = ground(text, HITS, DOCS)
    assert g.text == "Leaders changed [1][2]. Staff came from Amazon [2][1]. Bellevue had 1,700 people [2]."
    assert [c.source for c in g.citations] == [SHOP, SHOP]
    assert g.citations[0].passage_start == HITS[1].start and g.citations[1].passage_start == HITS[0].start
    assert not g.refused and g.removed == () and g.unsupported == ()


def test_markers_after_the_period_belong_to_the_sentence_before() -> None:
    text = "TikTok employed about 1,700 people in Bellevue. [1] ByteDance reduced executive autonomy.[2]"
    g = ground(text, HITS)
    assert g.unsupported == ()
    assert [c.quote.split()[0] for c in g.citations] == ["At", "ByteDance"]


def test_removed_marker_keeps_paragraphs() -> None:
    g = ground("Intro about staff [1].\n\n[8] Many came from Amazon [1].", HITS)
    assert g.text == "Intro about staff [1].\n\nMany came from Amazon [1]."
    assert g.removed == ("[8]",)


@pytest.mark.parametrize("seed", range(20))
def test_rewriter_gives_the_same_text_however_the_reply_is_split(seed: int) -> None:
    text = ("  Staff [3] came [1, 2] from Amazon [7].\n\n[9] Leaders [2][7][2, 3] changed [0] .  "
            "Array[x] and [ 1 ,3 ] end[2]x[2] [2")
    whole = MarkerRewriter(3)
    expected = whole.feed(text) + whole.finish()
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(text)), 12))
    parts = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    split = MarkerRewriter(3)
    assert "".join(split.feed(p) for p in parts) + split.finish() == expected
    assert split.removed == whole.removed == ["[7]", "[9]", "[7]", "[0]"]
    assert expected == ("Staff [1] came [2][3] from Amazon.\n\nLeaders [3][1] changed .  "
                        "Array[x] and [2][1] end[3]x[3] [2")


def test_quote_offsets_follow_a_moved_document() -> None:
    moved = {SHOP: "Preface added later.\n" + DOC}
    g = ground("TikTok employed about 1,700 people in Bellevue [1].", HITS, moved)
    (c,) = g.citations
    assert moved[SHOP][c.start:c.end] == c.quote and g.notices == ()
    g = ground("TikTok employed about 1,700 people in Bellevue [1].", HITS, {SHOP: "rewritten entirely"})
    assert g.notices == ("citation [1]: shop.md changed after it was indexed; rebuild the index",)


def test_build_messages_formats_pages() -> None:
    hit = Hit(1, 1.0, "report.pdf", 0, 5, "Hello", ("Intro", "Scope"), 3)
    content = build_messages("Q?", [hit])[-1]["content"]
    assert content == "Passages:\n\n[1] report.pdf — Intro > Scope (page 3)\nHello\n\nQuestion: Q?"
