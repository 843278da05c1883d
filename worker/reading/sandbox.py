"""Reading a document in a process of its own, with limits (worker.reading.child), so that an
untrusted file can cost at most its CPU seconds and its memory limit, and never the worker.

The reader's output is held to the limits again here: a reader that writes more than it may, or
runs past its time on the wall clock (asleep, or stuck in a system call), is killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from shared.config import DocumentSettings
from shared.enums import DocumentFailure
from worker.reading.formats import Unit, Unreadable

log = logging.getLogger(__name__)

# A DOCX's parts may unpack to this many times the document's own limit of characters (XML is wordy).
_UNPACKED_PER_CHAR = 16


@dataclass
class Read:
    """What a reader found: its kind, pages (if the kind has pages) and text, unit by unit."""

    kind: str
    pages: int | None
    units: list[Unit] = field(default_factory=list)
    peak_mb: float = 0.0  # the reader process's largest resident memory


def read_document(
    data: bytes,
    name: str,
    settings: DocumentSettings,
    on_page: Callable[[int, int | None], None] = lambda page, pages: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Read:
    """The text of `data` (a file called `name`), or Unreadable with the reason; `on_page(n, of)` is
    told as pages are read, and `should_stop` is asked between them."""
    if len(data) > settings.document_max_bytes:
        raise Unreadable(
            DocumentFailure.TOO_LARGE, f"the file is larger than {settings.document_max_bytes} bytes"
        )
    command = [
        sys.executable,
        "-m",
        "worker.reading.child",
        str(settings.document_max_pages),
        str(settings.document_max_chars * _UNPACKED_PER_CHAR),
        str(settings.document_max_chars),
        str(settings.document_read_seconds),
        str(settings.document_read_memory_mb),
        name[-200:],
    ]
    began = time.monotonic()
    # A session of its own: the reader and what it starts (Tesseract) are stopped together.
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # Whatever the reader does, it ends by this time: its CPU limit, and as long again asleep.
    deadline = threading.Timer(settings.longest_read_seconds(), _stop, args=(process,))
    deadline.start()
    try:
        return _follow(process, data, settings, on_page, should_stop)
    finally:
        deadline.cancel()
        _stop(process)
        process.wait()
        assert process.stdout is not None
        process.stdout.close()
        log.debug("document %r read in %.2f s", name, time.monotonic() - began)


def _follow(
    process: subprocess.Popen[bytes],
    data: bytes,
    settings: DocumentSettings,
    on_page: Callable[[int, int | None], None],
    should_stop: Callable[[], bool],
) -> Read:
    assert process.stdin is not None and process.stdout is not None
    writer = threading.Thread(target=_feed, args=(process.stdin, data), daemon=True)
    writer.start()
    result: Read | None = None
    # Each unit's line holds its text as JSON: escapes at most make it six times longer.
    most = settings.document_max_chars * 6 + 1_000_000
    taken = 0
    for raw in process.stdout:
        taken += len(raw)
        if taken > most:
            raise Unreadable(DocumentFailure.TOO_LARGE, "the document has more text than is read")
        line = json.loads(raw)
        if "failure" in line:
            raise Unreadable(DocumentFailure(line["failure"]), str(line.get("detail", "")))
        if "kind" in line:
            result = Read(line["kind"], line.get("pages"))
            continue
        assert result is not None, "a reader writes its kind first"
        if "peak_kb" in line:
            result.peak_mb = int(line["peak_kb"]) / 1024
            continue
        unit = Unit(str(line["text"]), page=line.get("page"), section=line.get("section"))
        if unit.page is not None and (not result.units or result.units[-1].page != unit.page):
            on_page(unit.page, result.pages)
        result.units.append(unit)
        if should_stop():
            raise Unreadable(DocumentFailure.TOO_COSTLY, "reading was stopped")
    code = process.wait()
    if code in (-signal.SIGXCPU, -signal.SIGKILL):
        raise Unreadable(DocumentFailure.TOO_COSTLY, "reading it took longer than a document may")
    if result is None or code != 0:
        # A parser that crashed outright on a broken file (or its memory limit, met inside a library).
        raise Unreadable(
            DocumentFailure.UNREADABLE, f"the file could not be read (the reader stopped: {code})"
        )
    return result


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Kill the reader's whole session (Tesseract with it), if anything of it is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _feed(pipe: IO[bytes], data: bytes) -> None:
    try:
        pipe.write(data)
        pipe.close()
    except (BrokenPipeError, OSError):
        pass  # the reader stopped early (a refusal from the first bytes, or a limit)
