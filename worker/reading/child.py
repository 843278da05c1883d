"""`python -m worker.reading.child MAX_PAGES MAX_UNPACKED MAX_CHARS CPU_SECONDS MEMORY_MB NAME`:
reads one document from stdin and writes its text to stdout, one JSON object a line:

    {"pages": 40}                                        (first, for a kind with pages)
    {"text": "...", "page": 1, "section": null}          (each unit of text, in order)
    {"peak_kb": 51200}                                   (last: the most memory reading took)
    {"failure": "document_encrypted", "detail": "..."}   (last, when it cannot be read)

Its own limits are set before it reads a byte: CPU seconds and address space, so a document that
makes a parser spin or swell ends this process (SIGXCPU, MemoryError) and nothing else.
"""

from __future__ import annotations

import json
import resource
import sys

from shared.enums import DocumentFailure
from worker.reading.formats import Limits, Unreadable, read, sniff


def _limit(cpu_seconds: int, memory_mb: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # No core files of a reader that was stopped.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _say(line: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    max_pages, max_unpacked, max_chars, cpu_seconds, memory_mb = (int(value) for value in argv[:5])
    name = argv[5] if len(argv) > 5 else ""
    _limit(cpu_seconds, memory_mb)
    data = sys.stdin.buffer.read()
    kept = 0
    try:
        kind = sniff(data, name)
        pages, units = read(data, kind, Limits(max_pages, max_unpacked, ocr_seconds=cpu_seconds))
        _say({"kind": kind.value, "pages": pages})
        for unit in units:
            kept += len(unit.text)
            if kept > max_chars:
                raise Unreadable(
                    DocumentFailure.TOO_LARGE, f"the document has more than {max_chars} characters of text"
                )
            if unit.text:
                _say({"text": unit.text, "page": unit.page, "section": unit.section})
        # What reading it took at most (kB on Linux): what a box must have free for a document.
        _say({"peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})
    except Unreadable as exc:
        _say({"failure": exc.failure.value, "detail": str(exc)})
    except MemoryError:
        _say({"failure": DocumentFailure.TOO_COSTLY.value, "detail": "reading it took too much memory"})
    except RecursionError:
        _say({"failure": DocumentFailure.UNREADABLE.value, "detail": "the document nests too deeply"})
    except Exception as exc:  # noqa: BLE001 - a parser's surprise at a broken file: broken, said once
        _say(
            {
                "failure": DocumentFailure.UNREADABLE.value,
                "detail": f"the file is damaged ({type(exc).__name__})",
            }
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
