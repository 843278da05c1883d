"""Shared fixtures: a real Redis server, real SQLite files, the gateway app, in-process and real workers."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue
from sqlalchemy import create_engine, make_url, text

from api.main import create_app
from shared.config import (
    DatabaseSettings,
    DocumentSettings,
    GatewaySettings,
    ModelSettings,
    QueueSettings,
    VoiceSettings,
    WorkerSettings,
)
from shared.db import Database
from shared.jobs import announce_change, make_queue, make_redis
from shared.migrate import upgrade
from stack.lifeline import bound_popen
from stack.redis_server import free_port, start_redis
from tests.fakes import FakeChatModel
from worker import tasks
from worker.reply import ReplyService
from worker.slots import SlotWorker

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "test-key-0123456789abcdef"
BOT_API_KEY = "test-bot-key-0123456789abcdef"
MODELS = ROOT / "data" / "models"
# The fast tests' model (engine, batching, the remote backend's stand-in server): quick, not clever.
TINY_MODEL = MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"
# What a person gets on this machine with no model chosen: the end-to-end tests use it.
REAL_MODEL = ModelSettings(_env_file=None, models_dir=MODELS).resolved_path()


@dataclass
class RedisServer:
    url: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=10)

    def start(self) -> None:
        self.process = start_redis(self.port, self.data_dir)


def _start_server(data_dir: Path) -> RedisServer:
    port = free_port()
    return RedisServer(f"redis://127.0.0.1:{port}/0", port, data_dir, start_redis(port, data_dir))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis for the session: TEST_REDIS_URL if given, else a local server we start."""
    given = os.environ.get("TEST_REDIS_URL")
    if given:
        yield RedisServer(given, 0, Path(), None)
        return
    server = _start_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, free to be stopped and started again."""
    server = _start_server(tmp_path / "redis")
    yield server
    if server.process and server.process.poll() is None:
        server.stop()


@pytest.fixture
def queue_settings(redis_server: RedisServer) -> QueueSettings:
    # A queue of its own per test: tests never see each other's jobs.
    return QueueSettings(
        _env_file=None, redis_url=redis_server.url, queue_name=f"test-{uuid.uuid4().hex[:8]}"
    )


# Set to a PostgreSQL URL (a user who may create databases) to run the suite against PostgreSQL.
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
ON_POSTGRES = bool(TEST_DATABASE_URL and TEST_DATABASE_URL.startswith("postgresql"))
sqlite_only = pytest.mark.skipif(ON_POSTGRES, reason="about SQLite itself")


@contextlib.contextmanager
def _postgres_database(prefix: str, template: str | None = None) -> Iterator[str]:
    """A PostgreSQL database of its own (a copy of `template`, if given), dropped afterwards."""
    assert TEST_DATABASE_URL is not None
    admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _postgres_url(name: str) -> str:
    assert TEST_DATABASE_URL is not None
    return make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The migrations run once per session, into a template each test's database is copied from:
    a SQLite file, or a PostgreSQL database (CREATE DATABASE … TEMPLATE)."""
    if not ON_POSTGRES:
        path = tmp_path_factory.mktemp("template") / "assistant.db"
        upgrade(f"sqlite:///{path}")
        yield str(path)
        return
    with _postgres_database("template") as name:
        upgrade(_postgres_url(name))
        yield name


@pytest.fixture
def db_url(tmp_path: Path, migrated_template: str) -> Iterator[str]:
    """A migrated, empty database of this test's own: a SQLite file, or a fresh PostgreSQL database."""
    if not ON_POSTGRES:
        path = tmp_path / "assistant.db"
        shutil.copyfile(migrated_template, path)
        yield f"sqlite:///{path}"
        return
    with _postgres_database("test", template=migrated_template) as name:
        yield _postgres_url(name)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database.from_settings(DatabaseSettings(_env_file=None, database_url=db_url))
    yield database
    database.dispose()


@pytest.fixture
def redis_conn(queue_settings: QueueSettings) -> Iterator[Redis]:
    conn = make_redis(queue_settings)
    yield conn
    conn.close()


@pytest.fixture
def queue(queue_settings: QueueSettings, redis_conn: Redis) -> Queue:
    return make_queue(queue_settings, redis_conn)


@pytest.fixture
def gateway_settings() -> GatewaySettings:
    # A generous per-user limit: tests that send bursts from one user are not about rate limiting.
    return GatewaySettings(
        _env_file=None,
        api_key=API_KEY,
        bot_api_key=BOT_API_KEY,
        max_text_chars=4000,
        rate_limit_per_minute=10_000,
        max_active_per_user=50,
        # Tests poll as fast as they like; pacing has tests of its own.
        min_poll_interval_seconds=0,
        reads_per_second=10_000,
        reads_per_second_total=100_000,
        writes_per_minute=1_000_000,
    )


def make_client(
    gateway_settings: GatewaySettings,
    db_url: str,
    queue_settings: QueueSettings,
    model_settings: ModelSettings | None = None,
    voice_settings: VoiceSettings | None = None,
    document_settings: DocumentSettings | None = None,
) -> TestClient:
    app = create_app(
        gateway_settings,
        DatabaseSettings(_env_file=None, database_url=db_url),
        queue_settings,
        model_settings or ModelSettings(_env_file=None),
        voice_settings or VoiceSettings(_env_file=None),
        document_settings or DocumentSettings(_env_file=None),
    )
    return TestClient(app, headers={"X-API-Key": API_KEY})


@pytest.fixture
def client(
    gateway_settings: GatewaySettings, db_url: str, queue_settings: QueueSettings
) -> Iterator[TestClient]:
    with make_client(gateway_settings, db_url, queue_settings) as test_client:
        yield test_client


@pytest.fixture
def fake_model() -> FakeChatModel:
    return FakeChatModel()


@pytest.fixture
def model_settings() -> ModelSettings:
    return ModelSettings(_env_file=None, max_tokens=64, min_reply_tokens=8, system_prompt="Be brief.")


@pytest.fixture
def worker_settings() -> WorkerSettings:
    return WorkerSettings(
        _env_file=None,
        partial_interval_seconds=0.05,
        heartbeat_interval_seconds=0.5,
        generation_timeout_seconds=30,
    )


@pytest.fixture
def reply_service(
    db: Database,
    queue: Queue,
    fake_model: FakeChatModel,
    model_settings: ModelSettings,
    worker_settings: WorkerSettings,
) -> ReplyService:
    announce = partial(announce_change, queue)
    return ReplyService(db, fake_model, model_settings, worker_settings, "test-worker", announce=announce)


def run_queued_jobs(queue: Queue) -> None:
    """Run every queued job in this process, in a slot as `python -m worker` does, then return."""
    SlotWorker(
        [queue], connection=queue.connection, serializer=queue.serializer, stopping=threading.Event()
    ).work(burst=True, logging_level="WARNING")


@pytest.fixture
def run_jobs(reply_service: ReplyService, queue: Queue) -> Iterator[Callable[[], None]]:
    """`run_queued_jobs` with the scripted model installed."""
    tasks.install(reply_service)
    yield partial(run_queued_jobs, queue)
    tasks.install(None)


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> object:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


# Variables of the developer's shell that would choose another model or gateway for a test's worker.
FOREIGN_TO_WORKERS = ("MODEL_", "API_", "TELEGRAM_")


def worker_variables(db_url: str, queue_settings: QueueSettings, **extra: str) -> dict[str, str]:
    """What a test's worker is told: this test's database and queue, and `extra`."""
    return {
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": db_url,
        "REDIS_URL": queue_settings.redis_url,
        "QUEUE_NAME": queue_settings.queue_name,
        # The speech model fetched by `make test-models`, not a new download into the empty folder.
        "MODELS_DIR": str(MODELS),
        "LOG_LEVEL": "INFO",
        **extra,
    }


def worker_env(db_url: str, queue_settings: QueueSettings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_TO_WORKERS)}
    return env | worker_variables(db_url, queue_settings, **extra)


def start_worker_process(module: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """A real worker process (`python -m worker` or the fake-model one), logging to `log_path`.

    It runs in an empty folder, so no `.env` of the developer's reaches it.
    """
    workdir = log_path.parent / f"cwd-{uuid.uuid4().hex[:6]}"
    workdir.mkdir()
    with open(log_path, "ab") as log:
        return bound_popen(
            [sys.executable, "-m", module], env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
        )


@pytest.fixture
def fake_workers(tmp_path: Path, db_url: str, queue_settings: QueueSettings) -> Iterator[Callable[..., Any]]:
    """Start real worker processes with the scripted model; all are killed when the test ends."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(**settings: str) -> subprocess.Popen[bytes]:
        env = worker_env(db_url, queue_settings, **settings)
        process = start_worker_process("tests.fake_worker", env, tmp_path / f"worker-{len(processes)}.log")
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
    # Shown with a failing test's captured log: what the workers said, for the one reading CI's output.
    for number in range(len(processes)):
        said = (tmp_path / f"worker-{number}.log").read_text(errors="replace")
        logging.getLogger("tests.workers").warning("worker-%d log (tail):\n%s", number, said[-3000:])


@pytest.fixture
def real_worker(tmp_path: Path, db_url: str, queue_settings: QueueSettings) -> Iterator[Callable[..., Path]]:
    """Start `python -m worker` with the real default model (and extra settings); returns its log file."""
    if not REAL_MODEL.is_file():
        pytest.fail(f"{REAL_MODEL} is missing: run `make model` (make test does)")
    processes: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(**settings: str) -> Path:
        log = tmp_path / f"worker-{len(processes)}.log"
        env = worker_env(
            db_url,
            queue_settings,
            **{"MODEL_PATH": str(REAL_MODEL), "MAX_TOKENS": "48", "SEED": "7", **settings},
        )
        processes.append((start_worker_process("worker", env, log), log))
        return log

    yield start
    for process, log in processes:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        # A worker stopped with SIGTERM between jobs leaves cleanly.
        assert process.returncode == 0, log.read_text()[-3000:]


class ServedGateway:
    """The gateway app served by uvicorn on loopback, as the bot meets it in production."""

    def __init__(
        self,
        gateway: GatewaySettings,
        database: DatabaseSettings,
        queue: QueueSettings,
        port: int | None = None,
        documents: DocumentSettings | None = None,
    ) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            create_app(
                gateway,
                database,
                queue,
                ModelSettings(_env_file=None),
                VoiceSettings(_env_file=None),
                documents or DocumentSettings(_env_file=None),
            ),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def served_gateway(
    gateway_settings: GatewaySettings, db_url: str, queue_settings: QueueSettings
) -> Iterator[ServedGateway]:
    served = ServedGateway(
        gateway_settings, DatabaseSettings(_env_file=None, database_url=db_url), queue_settings
    )
    served.start()
    yield served
    served.stop()
