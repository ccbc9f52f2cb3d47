"""One typed settings object, read from ``ZHIKU_*`` environment variables.

The seed stack's names (``DEFAULT_ROOT_PSW``, ``PG_URL``, ``OPENAI_BASE_URL``,
``CHAT_API_KEY``, ``SQL_DSN``) are accepted as aliases so an existing ``.env``
keeps working. Settings are built once (``Settings()``) at the edge — the CLI —
and passed in; nothing else reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


DEFAULT_EMBED_API_KEY = "sk-aaabbbcccdddeeefffggghhhiiijjjkkk"

# The stores ``zhiku.retrieval`` registers (a test checks the two agree). Settings sit below the services,
# so they name the choices rather than importing the registry.
VECTOR_STORES = ("pgvector",)


def parse_model_specs(value: str, setting: str) -> dict[str, Path]:
    """``"name=/path,name2=/path2"`` → ``{name: Path}``; a malformed entry is a ValueError naming it."""
    specs: dict[str, Path] = {}
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        name, sep, path = entry.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"{setting} entry {entry!r} is not of the form name=/path/to/model")
        specs[name.strip()] = Path(path.strip()).expanduser()
    return specs


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    # --- process -----------------------------------------------------------------
    profile: Literal["dev", "prod"] = Field("dev", validation_alias=_env("ZHIKU_PROFILE"))
    data_dir: Path = Field(Path("./data"), validation_alias=_env("ZHIKU_DATA_DIR"))
    host: str = Field("0.0.0.0", validation_alias=_env("ZHIKU_HOST"))
    port: int = Field(3000, validation_alias=_env("ZHIKU_PORT"))
    log_level: str = Field("info", validation_alias=_env("ZHIKU_LOG_LEVEL"))

    # --- database ----------------------------------------------------------------
    # Empty means: start the embedded PostgreSQL in ``data_dir/pg``.
    database_url: str = Field("", validation_alias=_env("ZHIKU_DATABASE_URL", "PG_URL"))
    db_pool_size: int = Field(10, validation_alias=_env("ZHIKU_DB_POOL_SIZE"))
    # When the embedded PostgreSQL dies under a running process: seconds before it is started again
    # (doubled after each failed try, up to a minute). Requests answer 503 database_unavailable meanwhile.
    db_restart_backoff_seconds: float = Field(2.0, gt=0, le=3600,
                                              validation_alias=_env("ZHIKU_DB_RESTART_BACKOFF_SECONDS"))
    # Where chunk vectors are kept and searched (``zhiku.retrieval.vector_store``).
    vector_store: str = Field("pgvector", validation_alias=_env("ZHIKU_VECTOR_STORE"))

    # --- users -------------------------------------------------------------------
    root_password: str | None = Field(None, validation_alias=_env("DEFAULT_ROOT_PSW", "ZHIKU_ROOT_PASSWORD"))
    session_ttl_hours: int = Field(24 * 7, validation_alias=_env("ZHIKU_SESSION_TTL_HOURS"))
    # Login limits (zhiku.auth.login_limits): in memory, per server process.
    login_max_failures: int = Field(5, ge=1, validation_alias=_env("ZHIKU_LOGIN_MAX_FAILURES"))
    login_failure_window_seconds: float = Field(900.0, gt=0,
                                                validation_alias=_env("ZHIKU_LOGIN_FAILURE_WINDOW_SECONDS"))
    login_lockout_seconds: float = Field(60.0, gt=0, validation_alias=_env("ZHIKU_LOGIN_LOCKOUT_SECONDS"))
    login_lockout_max_seconds: float = Field(900.0, gt=0, validation_alias=_env("ZHIKU_LOGIN_LOCKOUT_MAX_SECONDS"))
    login_address_max_failures: int = Field(20, ge=1, validation_alias=_env("ZHIKU_LOGIN_ADDRESS_MAX_FAILURES"))
    login_address_window_seconds: float = Field(60.0, gt=0,
                                                validation_alias=_env("ZHIKU_LOGIN_ADDRESS_WINDOW_SECONDS"))

    # --- embeddings --------------------------------------------------------------
    embedding_model: str = Field("multilingual-e5-small", validation_alias=_env("ZHIKU_EMBEDDING_MODEL"))
    embed_batch_size: int = Field(32, validation_alias=_env("ZHIKU_EMBED_BATCH_SIZE"))
    # Extra local models: "name=/path/to/model-dir,name2=/path2" (sentence-transformers / HF layout).
    embed_models: str = Field("", validation_alias=_env("ZHIKU_EMBED_MODELS"))
    # A cross-encoder for /v1/rerank: "name=/path/to/model-dir" (e.g. a bge-reranker download).
    rerank_model: str = Field("", validation_alias=_env("ZHIKU_RERANK_MODEL"))

    # --- embedding server (``zhiku embed-server``, the m3e container's role) -------------
    embed_host: str = Field("127.0.0.1", validation_alias=_env("ZHIKU_EMBED_HOST"))
    embed_port: int = Field(6008, validation_alias=_env("ZHIKU_EMBED_PORT"))
    # The seed's m3e image key, so a OneAPI channel set up for it works unchanged; empty: no auth.
    embed_api_key: str = Field(DEFAULT_EMBED_API_KEY, validation_alias=_env("ZHIKU_EMBED_API_KEY"))
    embed_aliases: str = Field("m3e", validation_alias=_env("ZHIKU_EMBED_ALIASES"))
    embed_max_batch_tokens: int = Field(8192, ge=1, validation_alias=_env("ZHIKU_EMBED_MAX_BATCH_TOKENS"))
    embed_max_inputs: int = Field(2048, ge=1, validation_alias=_env("ZHIKU_EMBED_MAX_INPUTS"))
    embed_truncate: Literal["window", "reject"] = Field("window", validation_alias=_env("ZHIKU_EMBED_TRUNCATE"))

    # --- chat models -------------------------------------------------------------
    openai_base_url: str = Field("", validation_alias=_env("OPENAI_BASE_URL", "ZHIKU_OPENAI_BASE_URL"))
    chat_api_key: str = Field("", validation_alias=_env("CHAT_API_KEY", "ZHIKU_CHAT_API_KEY"))
    chat_model: str = Field("gpt-4o-mini", validation_alias=_env("ZHIKU_CHAT_MODEL"))
    chat_timeout_seconds: float = Field(120.0, validation_alias=_env("ZHIKU_CHAT_TIMEOUT_SECONDS"))

    # --- model gateway (zhiku.gateway, the OneAPI role) -----------------------------
    # Encrypts channel keys at rest; empty: a key generated once into ``data_dir/secret.key``.
    secret_key: str = Field("", validation_alias=_env("ZHIKU_SECRET_KEY"))
    gateway_enabled: bool = Field(True, validation_alias=_env("ZHIKU_GATEWAY_ENABLED"))
    # Empty: the platform's database. Accepts SQLAlchemy URLs and OneAPI's Go-style MySQL DSN.
    gateway_database_url: str = Field("", validation_alias=_env("ZHIKU_GATEWAY_DATABASE_URL", "SQL_DSN"))
    gateway_port: int = Field(3001, validation_alias=_env("ZHIKU_GATEWAY_PORT"))
    gateway_retry_count: int = Field(2, validation_alias=_env("ZHIKU_GATEWAY_RETRY_COUNT"))
    gateway_timeout_seconds: float = Field(120.0, validation_alias=_env("ZHIKU_GATEWAY_TIMEOUT_SECONDS"))
    gateway_flush_interval_seconds: float = Field(1.0, validation_alias=_env("ZHIKU_GATEWAY_FLUSH_INTERVAL_SECONDS"))
    gateway_refresh_seconds: float = Field(30.0, validation_alias=_env("ZHIKU_GATEWAY_REFRESH_SECONDS"))
    gateway_auto_disable: bool = Field(True, validation_alias=_env("ZHIKU_GATEWAY_AUTO_DISABLE"))
    gateway_channel_test_seconds: float = Field(600.0, validation_alias=_env("ZHIKU_GATEWAY_CHANNEL_TEST_SECONDS"))
    gateway_admin_token: str = Field("", validation_alias=_env("ZHIKU_GATEWAY_ADMIN_TOKEN"))
    gateway_max_request_bytes: int = Field(32 * 1024 * 1024, ge=1024,
                                           validation_alias=_env("ZHIKU_GATEWAY_MAX_REQUEST_BYTES"))
    initial_root_token: str = Field("", validation_alias=_env("INITIAL_ROOT_TOKEN", "ZHIKU_INITIAL_ROOT_TOKEN"))

    # --- import ------------------------------------------------------------------
    upload_max_bytes: int = Field(100 * 1024 * 1024, validation_alias=_env("ZHIKU_UPLOAD_MAX_BYTES"))
    # Every other request body (settings, chat messages, chunk edits, pushed data): FastGPT's 10 MB.
    max_request_bytes: int = Field(10 * 1024 * 1024, ge=64 * 1024, validation_alias=_env("ZHIKU_MAX_REQUEST_BYTES"))
    # URL import, website crawls and workflow HTTP nodes refuse loopback, private, link-local and multicast
    # addresses (checked after DNS resolution and on every redirect) unless this is set.
    allow_private_urls: bool = Field(False, validation_alias=_env("ZHIKU_ALLOW_PRIVATE_URLS"))
    # An external document parser (FastGPT's custom-parser convention: the file is posted, markdown comes
    # back), tried first for the extensions in ``parser_types`` (comma-separated, e.g. ".pdf,.docx").
    parser_url: str = Field("", validation_alias=_env("ZHIKU_PARSER_URL"))
    parser_types: str = Field(".pdf", validation_alias=_env("ZHIKU_PARSER_TYPES"))
    # Sent as "Authorization: Bearer <key>" when set; the parser may take up to the timeout per file.
    parser_key: str = Field("", validation_alias=_env("ZHIKU_PARSER_KEY"))
    parser_timeout_seconds: float = Field(600.0, gt=0, validation_alias=_env("ZHIKU_PARSER_TIMEOUT_SECONDS"))
    # The most text one file may give (characters, after parsing): bounds the memory and time of chunking.
    import_max_chars: int = Field(10_000_000, ge=1000, validation_alias=_env("ZHIKU_IMPORT_MAX_CHARS"))
    # Fetching a web page (link collections, website crawls): the body is streamed and cut off at
    # ``fetch_max_bytes``; connect and each read wait ``fetch_timeout_seconds``; the whole fetch, redirects
    # included, ends after ``fetch_deadline_seconds`` (a page that never finishes loading).
    fetch_max_bytes: int = Field(10 * 1024 * 1024, ge=1024, validation_alias=_env("ZHIKU_FETCH_MAX_BYTES"))
    fetch_timeout_seconds: float = Field(10.0, gt=0, validation_alias=_env("ZHIKU_FETCH_TIMEOUT_SECONDS"))
    fetch_deadline_seconds: float = Field(60.0, gt=0, validation_alias=_env("ZHIKU_FETCH_DEADLINE_SECONDS"))
    # The most pages one website collection may crawl (a request's ``maxPages`` is capped to it).
    crawl_max_pages: int = Field(200, ge=1, le=10_000, validation_alias=_env("ZHIKU_CRAWL_MAX_PAGES"))

    # --- job queue ---------------------------------------------------------------
    job_lease_seconds: float = Field(60.0, validation_alias=_env("ZHIKU_JOB_LEASE_SECONDS"))
    job_max_attempts: int = Field(5, validation_alias=_env("ZHIKU_JOB_MAX_ATTEMPTS"))
    worker_poll_seconds: float = Field(1.0, validation_alias=_env("ZHIKU_WORKER_POLL_SECONDS"))
    worker_enabled: bool = Field(True, validation_alias=_env("ZHIKU_WORKER_ENABLED"))
    worker_concurrency: int = Field(2, ge=1, le=64, validation_alias=_env("ZHIKU_WORKER_CONCURRENCY"))

    @field_validator("vector_store")
    @classmethod
    def _known_vector_store(cls, value: str) -> str:
        if value not in VECTOR_STORES:
            raise ValueError(f"ZHIKU_VECTOR_STORE {value!r} is not a known vector store "
                             f"(known: {', '.join(VECTOR_STORES)})")
        return value

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_prod(self) -> Settings:
        """The seed's well-known passwords and the example file's placeholders are refused in production."""
        if self.profile != "prod":
            return self
        weak = {"", "1234", "123456", "change-me", "changeme", "password"}
        if self.root_password is not None and self.root_password.lower() in weak:
            raise ValueError("DEFAULT_ROOT_PSW is a placeholder; set a real password (or leave it unset "
                             "to have one generated) when ZHIKU_PROFILE=prod")
        if self.secret_key and (self.secret_key.lower().startswith("change-me") or len(self.secret_key) < 16):
            raise ValueError("ZHIKU_SECRET_KEY is a placeholder or shorter than 16 characters; "
                             "set a long random value when ZHIKU_PROFILE=prod")
        return self

    @model_validator(mode="after")
    def _model_specs_parse(self) -> Settings:
        parse_model_specs(self.embed_models, "ZHIKU_EMBED_MODELS")
        if len(parse_model_specs(self.rerank_model, "ZHIKU_RERANK_MODEL")) > 1:
            raise ValueError("ZHIKU_RERANK_MODEL takes one name=/path entry")
        return self

    @property
    def embed_model_paths(self) -> dict[str, Path]:
        return parse_model_specs(self.embed_models, "ZHIKU_EMBED_MODELS")

    @property
    def rerank_model_path(self) -> tuple[str, Path] | None:
        specs = parse_model_specs(self.rerank_model, "ZHIKU_RERANK_MODEL")
        return next(iter(specs.items()), None)

    @property
    def embed_alias_names(self) -> list[str]:
        return [a.strip() for a in self.embed_aliases.split(",") if a.strip()]

    @property
    def pg_data_dir(self) -> Path:
        return self.data_dir / "pg"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def secret_key_file(self) -> Path:
        return self.data_dir / "secret.key"

    @property
    def chat_model_configured(self) -> bool:
        return bool(self.openai_base_url)
