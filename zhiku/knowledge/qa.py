"""Training mode "qa": a chat model turns a chunk of text into question/answer pairs.

The prompt follows the shape FastGPT's users know (its ``Prompt_AgentQA``): the text between
``<Context>`` tags, a request for questions with complete answers in the text's own language,
and the output format ``Q1: … A1: …``. Parsing is lenient about the marker (``Q1:``, ``Q:``,
a full-width colon) and strict about the pairing: a question without an answer is dropped. When
nothing parses, the caller keeps the text as a plain chunk instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from zhiku.chat_model import ChatMessage, ChatModel, ChatParams
from zhiku.safetext import clean

# The prompt asks for at most this many pairs; more than MAX_PAIRS in a reply are not kept.
ASKED_PAIRS = 50
MAX_PAIRS = 100
# A question or answer longer than this (characters) is cut: a model that rambles cannot bloat a chunk.
MAX_QUESTION_CHARS = 2_000
MAX_ANSWER_CHARS = 10_000

_OUTPUT_FORMAT = """Write the pairs in exactly this format:
Q1: the first question
A1: its answer
Q2: the second question
A2: its answer"""

QA_SYSTEM_PROMPT = f"""You turn a passage of a document into question-and-answer pairs for a knowledge base.
The passage is the text between <Context> and </Context>. Study it, then:
- write the questions a reader of this passage would ask, each with an answer taken from the passage;
- make each answer complete and detailed, keeping the passage's own wording, facts and numbers;
- answers may use Markdown (lists, tables, code, links) when the passage does;
- write in the passage's language;
- write at most {ASKED_PAIRS} pairs, and nothing else.

{_OUTPUT_FORMAT}"""


@dataclass(frozen=True)
class QAPair:
    q: str
    a: str


def qa_messages(text: str, prompt: str | None = None) -> list[ChatMessage]:
    """The messages that ask for Q&A pairs from ``text``; ``prompt`` replaces the instructions (FastGPT's
    ``qaPrompt``) while the output format stays ours, since the parser depends on it."""
    instructions = QA_SYSTEM_PROMPT if not prompt else f"{prompt.strip()}\n\n{_OUTPUT_FORMAT}"
    return [ChatMessage(role="system", content=instructions),
            ChatMessage(role="user", content=f"<Context>\n{text}\n</Context>")]


# A marker at the start of a line: "Q1:", "Q 2:", "Q:", "**Q3**:", "Q1：" (full-width colon).
_MARKER = re.compile(r"^[ \t]*(?:\*\*)?([QA])[ \t]*\d*[ \t]*(?:\*\*)?[ \t]*[:：](?:\*\*)?[ \t]*", re.MULTILINE)


def parse_pairs(reply: str) -> list[QAPair]:
    """The Q&A pairs in a model's reply, in order; [] when it holds none."""
    pairs: list[QAPair] = []
    question: str | None = None
    markers = list(_MARKER.finditer(reply))
    for i, marker in enumerate(markers):
        end = markers[i + 1].start() if i + 1 < len(markers) else len(reply)
        body = clean(reply[marker.end():end]).strip()
        if marker.group(1) == "Q":
            question = body or None
        elif question is not None and body:
            pairs.append(QAPair(q=question[:MAX_QUESTION_CHARS], a=body[:MAX_ANSWER_CHARS]))
            question = None
            if len(pairs) == MAX_PAIRS:
                break
    return pairs


async def generate_pairs(chat_model: ChatModel, model: str, text: str,
                         prompt: str | None = None) -> list[QAPair]:
    """Ask ``model`` for Q&A pairs from ``text``. Model errors propagate as raised (with the upstream's
    status and ``Retry-After``), so the job queue can retry them."""
    result = await chat_model.complete(qa_messages(text, prompt), ChatParams(model=model, temperature=0.3))
    return parse_pairs(result.content)
