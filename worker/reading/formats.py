"""The text of a document, by kind: PDF, DOCX, HTML, Markdown, plain text, and pictures of pages
(by OCR).

Everything here reads untrusted bytes, and runs only inside the reading process that
`worker.reading.sandbox` starts with limits on its time and memory: a file that makes a parser
spin, or unpack to gigabytes, ends that process, never the worker.

The kind is told from the bytes themselves; a file's name only tells text kinds apart (Markdown or
plain), since anyone can name a file anything.
"""

from __future__ import annotations

import enum
import re
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from io import BytesIO
from xml.etree.ElementTree import Element

from shared.enums import DocumentFailure


class Kind(enum.StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    HTML = "html"
    MARKDOWN = "markdown"
    TEXT = "text"
    # A photo or scan of a page: its text is read by OCR (Tesseract, Russian and English).
    IMAGE = "image"


class Unreadable(Exception):
    """A document that cannot be read, with the reason people are told."""

    def __init__(self, failure: DocumentFailure, detail: str) -> None:
        super().__init__(detail)
        self.failure = failure


@dataclass(frozen=True)
class Unit:
    """A stretch of a document's text and where it is: a page (PDF) or the heading it is under."""

    text: str
    page: int | None = None
    section: str | None = None


@dataclass(frozen=True)
class Limits:
    max_pages: int
    # What a DOCX's parts may unpack to, together (a zip bomb unpacks to far more).
    max_unpacked_bytes: int
    # Wall-clock seconds OCR may take on one picture.
    ocr_seconds: float = 60.0


_DOCX_BODY = "word/document.xml"
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def sniff(data: bytes, name: str) -> Kind:
    """What `data` is, from its first bytes; Unreadable(UNSUPPORTED) for anything else."""
    head = data[:1024]
    if b"%PDF-" in head:
        return Kind.PDF
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(BytesIO(data)) as archive:
                if _DOCX_BODY in archive.namelist():
                    return Kind.DOCX
        except zipfile.BadZipFile:
            raise Unreadable(DocumentFailure.UNREADABLE, "the archive is damaged") from None
        raise Unreadable(DocumentFailure.UNSUPPORTED, "an archive that is not a Word document")
    if head.startswith(_PICTURES):
        return Kind.IMAGE
    if b"\x00" in head or _looks_binary(head):
        raise Unreadable(DocumentFailure.UNSUPPORTED, "not a document (PDF, DOCX, HTML, Markdown or text)")
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<!doctype html", b"<html")) or name.lower().endswith((".html", ".htm")):
        return Kind.HTML
    if name.lower().endswith((".md", ".markdown")):
        return Kind.MARKDOWN
    return Kind.TEXT


# What Tesseract reads: PNG, JPEG, TIFF (both byte orders), BMP.
_PICTURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM")


def _looks_binary(head: bytes) -> bool:
    # Other pictures and programs, by their signatures: text never starts like these.
    signatures = (b"GIF8", b"RIFF", b"\x7fELF", b"MZ", b"\x1f\x8b", b"BZh")
    return head.startswith(signatures)


def read(data: bytes, kind: Kind, limits: Limits) -> tuple[int | None, Iterator[Unit]]:
    """(the number of pages, if the kind has pages; the document's text, unit by unit)."""
    if kind is Kind.PDF:
        return _pdf(data, limits)
    if kind is Kind.DOCX:
        return None, _docx(data, limits)
    if kind is Kind.IMAGE:
        return 1, iter([Unit(_ocr(data, limits), page=1)])
    text = decode_text(data)
    if kind is Kind.HTML:
        return None, _html(text)
    return None, _sections(text, markdown=kind is Kind.MARKDOWN)


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without a BOM), else Windows-1251, where Russian text often comes from."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1251")
    except UnicodeDecodeError:
        raise Unreadable(
            DocumentFailure.UNSUPPORTED, "text in an encoding this server does not read"
        ) from None


def _pdf(data: bytes, limits: Limits) -> tuple[int, Iterator[Unit]]:
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == raw.FPDF_ERR_PASSWORD:
            raise Unreadable(DocumentFailure.ENCRYPTED, "the PDF is protected by a password") from None
        raise Unreadable(DocumentFailure.UNREADABLE, "the PDF is damaged") from None
    pages = len(document)
    if pages > limits.max_pages:
        document.close()
        raise Unreadable(
            DocumentFailure.TOO_LARGE, f"the PDF has {pages} pages; at most {limits.max_pages} are read"
        )

    def units() -> Iterator[Unit]:
        try:
            for number in range(pages):
                page = document[number]
                try:
                    textpage = page.get_textpage()
                    text = textpage.get_text_range()
                    textpage.close()
                finally:
                    page.close()
                yield Unit(_tidy(text), page=number + 1)
        finally:
            document.close()

    return pages, units()


def _ocr(data: bytes, limits: Limits) -> str:
    """The text of a picture of a page, by Tesseract (it inherits this process's limits)."""
    command = ["tesseract", "stdin", "stdout", "-l", "rus+eng"]
    try:
        done = subprocess.run(
            command, input=data, capture_output=True, timeout=limits.ocr_seconds, check=False
        )
    except FileNotFoundError:
        raise Unreadable(
            DocumentFailure.UNSUPPORTED, "pictures are not read on this server (Tesseract is not installed)"
        ) from None
    except subprocess.TimeoutExpired:
        raise Unreadable(DocumentFailure.TOO_COSTLY, "reading the picture took too long") from None
    if done.returncode != 0:
        raise Unreadable(DocumentFailure.UNREADABLE, "the picture could not be read")
    return _tidy(done.stdout.decode("utf-8", errors="replace"))


def _docx(data: bytes, limits: Limits) -> Iterator[Unit]:
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    with zipfile.ZipFile(BytesIO(data)) as archive:
        # What the archive says its parts unpack to; the read below holds to the limit whatever it says.
        if sum(info.file_size for info in archive.infolist()) > limits.max_unpacked_bytes:
            raise Unreadable(DocumentFailure.TOO_LARGE, "the document unpacks to more than is read")
        with archive.open(_DOCX_BODY) as part:
            body = part.read(limits.max_unpacked_bytes + 1)
    if len(body) > limits.max_unpacked_bytes:
        raise Unreadable(DocumentFailure.TOO_LARGE, "the document unpacks to more than is read")
    try:
        root = ElementTree.fromstring(body)
    except (ElementTree.ParseError, DefusedXmlException):
        raise Unreadable(DocumentFailure.UNREADABLE, "the Word document is damaged") from None
    section: str | None = None
    for block in root.iter():
        if block.tag == f"{_W}p":
            text = _paragraph_text(block)
            if not text.strip():
                continue
            style = block.find(f"{_W}pPr/{_W}pStyle")
            style_name = (style.get(f"{_W}val") or "") if style is not None else ""
            if style_name.lower().startswith(("heading", "title", "заголовок")):
                section = text.strip()[:200]
            yield Unit(text, section=section)


def _paragraph_text(paragraph: Element) -> str:
    parts: list[str] = []
    for node in paragraph.iter():
        if node.tag == f"{_W}t" and node.text:
            parts.append(node.text)
        elif node.tag == f"{_W}tab":
            parts.append("\t")
        elif node.tag in (f"{_W}br", f"{_W}cr"):
            parts.append("\n")
    return "".join(parts)


class _HTMLText(HTMLParser):
    _SKIPPED = frozenset({"script", "style", "noscript", "template", "head"})
    _BLOCKS = frozenset({"p", "div", "li", "tr", "br", "section", "article", "h1", "h2", "h3", "h4", "pre"})
    _HEADINGS = frozenset({"h1", "h2", "h3"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.units: list[Unit] = []
        self._skipping = 0
        self._heading: list[str] | None = None
        self._section: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIPPED:
            self._skipping += 1
        elif tag in self._HEADINGS:
            self._flush()
            self._heading = []
        elif tag in self._BLOCKS:
            self._text.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._HEADINGS and self._heading is not None:
            heading = " ".join("".join(self._heading).split())
            self._heading = None
            self._section = heading[:200] or self._section
            self._text.append(heading + "\n")
        elif tag in self._BLOCKS:
            self._text.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if self._heading is not None:
            self._heading.append(data)
        else:
            self._text.append(data)

    def _flush(self) -> None:
        text = _tidy("".join(self._text))
        if text:
            self.units.append(Unit(text, section=self._section))
        self._text = []

    def close(self) -> None:
        super().close()
        self._flush()


def _html(text: str) -> Iterator[Unit]:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    yield from parser.units


_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")


def _sections(text: str, markdown: bool) -> Iterator[Unit]:
    """Plain text in paragraphs; Markdown's headings name the section each paragraph is under."""
    section: str | None = None
    for paragraph in re.split(r"\n\s*\n", text):
        lines = paragraph.strip("\n").splitlines()
        if markdown and lines and (heading := _MD_HEADING.match(lines[0])):
            section = heading.group(1)[:200]
        tidy = _tidy(paragraph)
        if tidy:
            yield Unit(tidy, section=section)


def _tidy(text: str) -> str:
    """Text with its runs of blanks made single and blank lines dropped (PDFs are full of them)."""
    text = text.replace("\r", "\n").replace("\x00", "")
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)
