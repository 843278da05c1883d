# One image for the gateway, the worker, the bot and rq-dashboard.
# Build stage: compile llama-cpp-python (llama.cpp) and install everything into a virtualenv.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
ENV CMAKE_ARGS="-DLLAVA_BUILD=OFF" \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
# Without llama.cpp's AMX kernels on x86, as the Makefile builds it (why: there).
RUN case "$(uname -m)" in x86_64) export CFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" \
        CXXFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16";; esac \
    && /opt/venv/bin/pip install --require-hashes -r /tmp/requirements.lock
# The document embedder (worker/embedder.py): its model fetched as pinned data and its C engine
# compiled here, where the compiler is; the runtime stage takes both.
COPY shared /src/shared
COPY worker/__init__.py worker/embedder.py /src/worker/
RUN cd /src && /opt/venv/bin/python -m worker.embedder /opt/embedder

# Runtime stage: the virtualenv and our code, no compiler. Every service runs without privileges:
# the entrypoint starts as root only to make the mounted data directory writable, then drops to
# the data directory's owner (the image's user 10001 when root owns it) before running anything.
FROM python:3.11-slim-bookworm
# Tesseract with its Russian and English data reads photos of pages (worker/reading/formats.py).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 tesseract-ocr tesseract-ocr-rus tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 assistant
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/embedder /opt/embedder
WORKDIR /app
COPY api ./api
COPY bot ./bot
COPY shared ./shared
COPY stack ./stack
COPY worker ./worker
# Copied between stages, files keep their times only to the second, and the hash records hold
# them to the nanosecond: the embedder's are recorded again here, so that no start hashes it anew.
RUN /opt/venv/bin/python -m worker.embedder /opt/embedder >/dev/null
COPY deploy/entrypoint.sh /usr/local/bin/docker-entrypoint
RUN mkdir -p /app/data && chown assistant:assistant /app/data
# Two glibc heaps per process, not eight per core: freed memory stays in fewer of them (see
# stack/supervisor.py, where `make run` sets the same).
ENV PATH="/opt/venv/bin:$PATH" \
    EMBEDDER_DIR=/opt/embedder \
    MALLOC_ARENA_MAX=2 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
EXPOSE 8000
ENTRYPOINT ["docker-entrypoint"]
CMD ["python", "-m", "uvicorn", "--factory", "api.main:create_app", "--host", "0.0.0.0", "--port", "8000"]
