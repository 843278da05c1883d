"""The model's Markdown as Telegram text with entities, in messages that fit Telegram's limit.

We send entities, never a parse mode, so Telegram has nothing to fail to parse: markup we do not
understand, or that is left open, simply stays as literal text. Long answers are split between
paragraphs or code-block lines; nothing is ever cut off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiogram.types import MessageEntity
from aiogram.utils.formatting import Bold, Code, Italic, Pre, Strikethrough, Text, TextLink

# Telegram's limit is 4,096 characters; we count UTF-16 units (an emoji takes two) to stay inside it.
LIMIT = 4096

_FENCE = re.compile(r"^```[ \t]*([\w+#.-]*)[ \t]*$")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(?=\S)")
_INLINE = re.compile(
    r"(?P<code>`(?P<code_t>[^`\n]+)`)"
    r"|(?P<link>\[(?P<link_t>[^\]\n]+)\]\((?P<link_u>https?://[^\s)]+)\))"
    r"|(?P<bold>\*\*(?=\S)(?P<bold_t>.+?)(?<=\S)\*\*)"
    r"|(?P<bold2>__(?=\S)(?P<bold2_t>.+?)(?<=\S)__)"
    r"|(?P<strike>~~(?=\S)(?P<strike_t>.+?)(?<=\S)~~)"
    r"|(?P<italic>(?<![\w*])\*(?=[^\s*])(?P<italic_t>.+?)(?<=[^\s*])\*(?![\w*]))"
    r"|(?P<italic2>(?<![\w_])_(?=[^\s_])(?P<italic2_t>.+?)(?<=[^\s_])_(?![\w_]))"
)


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
    nodes: list[str | Text] = []
    position = 0
    for match in _INLINE.finditer(text):
        if match.start() > position:
            nodes.append(text[position : match.start()])
        kind = match.lastgroup
        group = match.groupdict()
        if group["code"]:
            nodes.append(Code(group["code_t"]))
        elif group["link"]:
            nodes.append(TextLink(*_inline(group["link_t"]), url=group["link_u"]))
        elif group["bold"] or group["bold2"]:
            nodes.append(Bold(*_inline(group["bold_t"] or group["bold2_t"])))
        elif group["strike"]:
            nodes.append(Strikethrough(*_inline(group["strike_t"])))
        else:
            assert kind in ("italic", "italic2")
            nodes.append(Italic(*_inline(group["italic_t"] or group["italic2_t"])))
        position = match.end()
    if position < len(text):
        nodes.append(text[position:])
    return nodes


def _paragraph(text: str) -> list[str | Text]:
    nodes: list[str | Text] = []
    for n, line in enumerate(text.split("\n")):
        if n:
            nodes.append("\n")
        heading = _HEADING.match(line)
        if heading:
            nodes.append(Bold(*_inline(heading.group(1))))
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
    return text, list(entities)


def _split_long(block: Block, limit: int) -> list[Block]:
    """Pieces of one block that alone is too long: code at line ends, text at line, sentence or word ends."""
    pieces: list[Block] = []
    rest = block.text
    while utf16_len(rest) > limit:
        window = rest[:limit]
        while utf16_len(window) > limit:
            window = window[:-1]
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


def split_plain(text: str, limit: int = LIMIT) -> list[str]:
    """Plain text in pieces within `limit`, cut at line or word ends where possible."""
    return [block.text for block in _split_long(Block(text), limit)] if text else []
