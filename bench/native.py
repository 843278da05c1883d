"""llama.cpp's own tools, built once from the sources inside llama-cpp-python's source distribution.

The benchmarks put our figures beside llama.cpp's: `llama-bench` (the model's own decode speed),
`llama-batched-bench` (what batching several sequences can give) and `llama-server` (a serving
stack with slots and continuous batching, on the same workload as ours). They are built from the
very llama.cpp that our pinned llama-cpp-python wraps, so both sides run the same kernels.
The build (about ten minutes on 2 cores) is cached in data/native/<version>/.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("llama-bench", "llama-batched-bench", "llama-server")


def tools_dir() -> Path:
    return ROOT / "data" / "native" / f"llama-cpp-python-{version('llama_cpp_python')}"


def ensure_tools() -> Path:
    """The folder holding the built tools (building them first if they are not there)."""
    target = tools_dir()
    if all((target / tool).is_file() for tool in TOOLS):
        return target
    pinned = f"llama-cpp-python=={version('llama_cpp_python')}"
    log.info("building llama.cpp's tools from %s (once; about ten minutes)", pinned)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-binary",
                ":all:",
                "--no-deps",
                "--dest",
                str(work),
                pinned,
            ],
            check=True,
        )
        archive = next(work.glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(archive) as sdist:
            sdist.extractall(work, filter="data")
        sources = next(work.glob("llama_cpp_python-*/vendor/llama.cpp"))
        build = work / "build"
        subprocess.run(
            [
                "cmake",
                "-S",
                str(sources),
                "-B",
                str(build),
                "-DCMAKE_BUILD_TYPE=Release",
                "-DLLAMA_CURL=OFF",
                "-DLLAMA_BUILD_TESTS=OFF",
                "-DBUILD_SHARED_LIBS=OFF",
            ],
            check=True,
        )
        jobs = str(os.cpu_count() or 2)
        subprocess.run(["cmake", "--build", str(build), "-j", jobs, "--target", *TOOLS], check=True)
        target.mkdir(parents=True, exist_ok=True)
        for tool in TOOLS:
            shutil.copy2(build / "bin" / tool, target / tool)
    return target


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(ensure_tools())
