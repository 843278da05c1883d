"""Documents made for the tests and the benchmarks: PDFs (a Cyrillic font embedded), Word files,
and hostile ones."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

from fpdf import FPDF

# Debian's fonts-dejavu-core: a TrueType font with Cyrillic letters, embedded in the test PDFs.
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def pdf(pages: list[str], password: str | None = None) -> bytes:
    """A PDF with one page of text per item of `pages` (Russian as well as English)."""
    document = FPDF()
    if password is not None:
        document.set_encryption(owner_password=password + "-owner", user_password=password)
    document.add_font("dejavu", fname=str(FONT))
    document.set_font("dejavu", size=11)
    for text in pages:
        document.add_page()
        document.multi_cell(0, 6, text)
    return bytes(document.output())


def page_photo(text: str, jpeg: bool = True) -> bytes:
    """A picture of a printed page with `text` on it, as a phone's camera or a scanner gives one."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(pdf([text]))
    try:
        picture = document[0].render(scale=200 / 72, grayscale=True).to_pil()
    finally:
        document.close()
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG" if jpeg else "PNG", quality=85)
    return buffer.getvalue()


def blank_pdf(pages: int) -> bytes:
    document = FPDF()
    document.set_font("helvetica", size=8)
    for n in range(pages):
        document.add_page()
        document.cell(text=f"{n}")
    return bytes(document.output())


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)


def docx(paragraphs: list[tuple[str | None, str]]) -> bytes:
    """A Word document: (style, text) paragraphs; a style such as "Heading1" makes a heading."""
    body = []
    for style, text in paragraphs:
        properties = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
        body.append(f"<w:p>{properties}<w:r><w:t>{escape(text)}</w:t></w:r></w:p>")
    xml = f'<?xml version="1.0"?><w:document xmlns:w="{_W}"><w:body>{"".join(body)}</w:body></w:document>'
    return _zip({"[Content_Types].xml": _TYPES, "word/document.xml": xml})


def docx_bomb(unpacked_bytes: int) -> bytes:
    """A Word document whose body unpacks to `unpacked_bytes` of nothing (a few hundred KB packed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _TYPES)
        with archive.open("word/document.xml", "w", force_zip64=True) as part:
            part.write(f'<w:document xmlns:w="{_W}"><w:body>'.encode())
            chunk = b" " * 1_048_576
            for _ in range(unpacked_bytes // len(chunk)):
                part.write(chunk)
            part.write(b"</w:body></w:document>")
    return buffer.getvalue()


def docx_entities() -> bytes:
    """A Word document whose XML defines entities that expand without end (a billion laughs)."""
    laughs = '<!DOCTYPE w [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    paragraph = "<w:p><w:r><w:t>&b;</w:t></w:r></w:p>"
    xml = f'<?xml version="1.0"?>{laughs}<w:document xmlns:w="{_W}"><w:body>{paragraph}</w:body></w:document>'
    return _zip({"[Content_Types].xml": _TYPES, "word/document.xml": xml})


def _zip(parts: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return buffer.getvalue()
