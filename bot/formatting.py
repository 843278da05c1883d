"""The model's Markdown as Telegram text with entities, in messages that fit Telegram's limit.

We send entities, never a parse mode, so Telegram has nothing to fail to parse: markup we do not
understand, or that is left open, simply stays as literal text. Long answers are split between
paragraphs or code-block lines; nothing is ever cut off.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

from aiogram.types import MessageEntity
from aiogram.utils.formatting import Bold, Code, Italic, Pre, Strikethrough, Text, TextLink
from markdown_it import MarkdownIt

log = logging.getLogger(__name__)
# Guards around formatting one answer: past either, the answer is sent as plain text.
MAX_FORMATTED_CHARS = 100_000
FORMAT_SECONDS = 2.0

# Telegram's limit is 4,096 characters; we count UTF-16 units (an emoji takes two) to stay inside it.
LIMIT = 4096

_FENCE = re.compile(r"^```[ \t]*([\w+#.-]*)[ \t]*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(?=\S)")
# Inline Markdown by markdown-it-py: a CommonMark parser whose emphasis matching is linear in the
# text, so no answer, however hostile, makes formatting slow (a regex of ours was cubic on one).
_MARKDOWN = MarkdownIt("zero").enable(["emphasis", "backticks", "strikethrough", "link", "escape"])
# Link targets as the model wrote them: percent-encoding would make the text longer than its source,
# and the splitter counts on the source's length.
_MARKDOWN.normalizeLink = lambda url: url  # type: ignore[method-assign]
_WRAPPERS = {"strong": Bold, "em": Italic, "s": Strikethrough}


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class Block:
    """A paragraph of text, or a code block (with its language, possibly empty)."""

    text: str
    code: bool = False
    language: str = ""

    def source(self) -> str:
        return f"```{self.language}\n{self.text}\n```" if self.code else self.text


def parse_blocks(markdown: str) -> list[Block]:
    """Paragraphs and fenced code blocks; an unclosed fence runs to the end (a cut-off answer)."""
    blocks: list[Block] = []
    paragraph: list[str] = []
    code: list[str] | None = None
    language = ""

    def end_paragraph() -> None:
        if paragraph and "".join(paragraph).strip():
            blocks.append(Block("\n".join(paragraph).strip("\n")))
        paragraph.clear()

    for line in markdown.replace("\r\n", "\n").split("\n"):
        fence = _FENCE.match(line.strip())
        if code is not None:
            if line.strip() == "```":
                blocks.append(Block("\n".join(code), code=True, language=language))
                code = None
            else:
                code.append(line)
        elif fence:
            end_paragraph()
            code, language = [], fence.group(1)
        elif not line.strip():
            end_paragraph()
        else:
            paragraph.append(line)
    if code is not None:
        blocks.append(Block("\n".join(code), code=True, language=language))
    end_paragraph()
    return blocks


def _inline(text: str) -> list[str | Text]:
    """One line's inline Markdown (code, bold, italic, strikethrough, links) as formatting nodes."""
    parsed = _MARKDOWN.parseInline(text)
    children = parsed[0].children or [] if parsed else []
    stack: list[tuple[str, list[str | Text], str]] = [("", [], "")]
    for token in children:
        nodes = stack[-1][1]
        if token.type == "text":
            nodes.append(token.content)
        elif token.type == "code_inline":
            nodes.append(Code(token.content))
        elif token.nesting == 1:
            stack.append((token.tag or token.type, [], str(token.attrGet("href") or "")))
        elif token.nesting == -1 and len(stack) > 1:
            kind, inner, href = stack.pop()
            stack[-1][1].extend(_wrap(kind, inner, href))
        elif token.type in ("softbreak", "hardbreak"):
            nodes.append("\n")
        else:
            nodes.append(token.content)
    return stack[0][1]


def _wrap(kind: str, nodes: list[str | Text], href: str) -> list[str | Text]:
    if kind in _WRAPPERS:
        return [_WRAPPERS[kind](*nodes)]
    if kind == "a":
        # The address is always shown: a link whose text hides where it leads is a phishing tool.
        label = Text(*nodes).render()[0] if nodes else ""
        if not href.startswith(("http://", "https://")):
            return [*nodes, f" ({href})" if href else ""]
        if label in (href, href.rstrip("/")):
            return [TextLink(href, url=href)]
        return [*nodes, " (", TextLink(href, url=href), ")"]
    return nodes


def _heading(line: str) -> str | None:
    """The text of an ATX heading line ("## Title ##"), or None; plain string work, linear time."""
    level = len(line) - len(line.lstrip("#"))
    if not 1 <= level <= 6 or len(line) == level or not line[level].isspace():
        return None
    body = line[level:].strip()
    closed = body.rstrip("#")
    if closed != body and (not closed or closed[-1].isspace()):
        body = closed.strip()
    return body or None


def _paragraph(text: str) -> list[str | Text]:
    nodes: list[str | Text] = []
    for n, line in enumerate(text.split("\n")):
        if n:
            nodes.append("\n")
        heading = _heading(line)
        if heading is not None:
            nodes.append(Bold(*_inline(heading)))
            continue
        bullet = _BULLET.match(line)
        if bullet:
            nodes.append(f"{bullet.group(1)}• ")
            line = line[bullet.end() :]
        nodes.extend(_inline(line))
    return nodes


def render(blocks: list[Block]) -> tuple[str, list[MessageEntity]]:
    """Plain text and entities for a list of blocks."""
    nodes: list[str | Text] = []
    for n, block in enumerate(blocks):
        if n:
            nodes.append("\n\n")
        if block.code:
            nodes.append(Pre(block.text or " ", language=block.language or None))
        else:
            nodes.extend(_paragraph(block.text))
    text, entities = Text(*nodes).render()
    if not text.strip():
        # Markup with nothing inside ("**", an empty heading): send what the model wrote instead.
        return "\n\n".join(block.source() for block in blocks), []
    return text, list(entities)


def _split_long(block: Block, limit: int) -> list[Block]:
    """Pieces of one block that alone is too long: code at line ends, text at line, sentence or word ends."""
    pieces: list[Block] = []
    rest = block.text
    while utf16_len(rest) > limit:
        window = rest[:limit]
        while (excess := utf16_len(window) - limit) > 0:
            window = window[: len(window) - excess]  # a character is one or two units
        cut = -1
        separators = ["\n"] if block.code else ["\n", ". ", "! ", "? ", " "]
        for separator in separators:
            found = window.rfind(separator)
            if found > limit // 3:
                cut = found + len(separator)
                break
        if cut <= 0:
            cut = len(window)
        piece, rest = rest[:cut], rest[cut:]
        pieces.append(Block(piece.rstrip("\n") if block.code else piece.rstrip(), block.code, block.language))
        if not block.code:
            rest = rest.lstrip()
    if rest:
        pieces.append(Block(rest, block.code, block.language))
    return pieces


def split_markdown(markdown: str, limit: int = LIMIT) -> list[list[Block]]:
    """Blocks grouped into messages whose source (never shorter than the text sent) fits `limit`."""
    blocks: list[Block] = []
    for block in parse_blocks(markdown):
        # Code keeps room for its fences in the source length.
        room = limit - (utf16_len(block.language) + 8 if block.code else 0)
        blocks.extend(_split_long(block, room) if utf16_len(block.source()) > limit else [block])
    messages: list[list[Block]] = []
    current: list[Block] = []
    size = 0
    for block in blocks:
        cost = utf16_len(block.source()) + (2 if current else 0)
        if current and size + cost > limit:
            messages.append(current)
            current, size = [], 0
            cost = utf16_len(block.source())
        current.append(block)
        size += cost
    if current:
        messages.append(current)
    return messages


def format_answer(markdown: str, limit: int = LIMIT) -> list[tuple[str, list[MessageEntity]]]:
    """The answer as one or more (text, entities) messages, each within Telegram's limit."""
    if not markdown.strip():
        return []
    return [render(blocks) for blocks in split_markdown(markdown, limit)]


async def format_guarded(markdown: str, limit: int = LIMIT) -> list[tuple[str, list[MessageEntity]]]:
    """`format_answer` in a thread, so that the bot's event loop (every other chat) never waits on
    it; answers over MAX_FORMATTED_CHARS, or taking over FORMAT_SECONDS, or failing, go as plain text."""
    if len(markdown) <= MAX_FORMATTED_CHARS:
        try:
            return await asyncio.wait_for(asyncio.to_thread(format_answer, markdown, limit), FORMAT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - any failure has the same way out: plain text
            log.warning("answer of %d characters sent unformatted: %r", len(markdown), exc)
    return [(piece, []) for piece in split_plain(markdown, limit)]


def split_plain(text: str, limit: int = LIMIT) -> list[str]:
    """Plain text in pieces within `limit`, cut at line or word ends where possible."""
    return [block.text for block in _split_long(Block(text), limit)] if text else []
