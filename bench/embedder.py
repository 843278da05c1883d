"""What the document embedder (worker.embedder) finds that BM25 over stems misses, and what it costs.

The embedder is fetched and compiled as the worker does it, into data/models/embedder/e5-small/.
Measured on bench.retrieval_set, in the same run:
- retrieval: the answer's passage in the first five, for the embedder alone and for its ranking
  fused with BM25's by reciprocal rank, beside BM25 alone (the worker's own search);
- cost: what loading it and embedding the set's passages adds to a process's memory (PSS), and
  passages embedded per second.

`python -m bench.embedder` prints the figures.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from sqlalchemy import text

from bench.harness import ROOT, Figure
from bench.retrieval import TOP, hit, index_set
from bench.retrieval_set import DOCUMENTS, QUESTIONS
from shared.config import DatabaseSettings
from shared.db import Database
from shared.migrate import upgrade
from worker import passages
from worker.embedder import Engine, build

FILES = ROOT / "data" / "models" / "embedder" / "e5-small"


def retrieval_figure(embedder: Engine) -> Figure:
    """The worker's own search (worker.passages) with the question's vector, and without."""
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'retrieval.db'}"
        upgrade(url)
        db = Database.from_settings(DatabaseSettings(_env_file=None, database_url=url))
        try:
            user, ids = index_set(db, embedder)
            with db.reading() as session:
                rows = session.execute(text("SELECT text, embedding FROM document_passage")).all()
            texts = [row.text for row in rows]
            vectors = np.stack([np.frombuffer(row.embedding, dtype="<f4") for row in rows])
            alone, together, bm25, missed = 0, 0, 0, []
            for question in QUESTIONS:
                asked = embedder.embed([question.text], query=True)[0]
                with db.reading() as session:
                    words = passages.search(session, user, list(ids.values()), question.text, TOP)
                    both = passages.search(session, user, list(ids.values()), question.text, TOP, asked)
                nearest = [texts[i] for i in np.argsort(-(vectors @ asked))[:TOP]]
                alone += hit(nearest, question.key)
                bm25 += hit([f.text for f in words], question.key)
                if hit([f.text for f in both], question.key):
                    together += 1
                else:
                    missed.append(question.text)
        finally:
            db.dispose()
    count = len(QUESTIONS)
    return Figure(
        f"Retrieval with the embedder (multilingual-e5-small, 4-bit): the answer's passage in the "
        f"first {TOP}, the worker's search by words and meaning (fused by reciprocal rank) vs by words",
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
from worker.embedder import Engine
from bench.retrieval_set import DOCUMENTS
library, model = map(Path, sys.argv[1:3])
process = psutil.Process()
before = process.memory_full_info().pss
embedder = Engine(library, model)
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
    library, model = build(FILES)
    return [retrieval_figure(Engine(library, model)), cost_figure(library, model)]


if __name__ == "__main__":
    from bench.harness import table_rows

    measured = figures()
    print("\n".join(table_rows(measured)))
    for figure in measured:
        print(figure.name, figure.extra)
