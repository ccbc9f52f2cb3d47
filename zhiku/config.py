"""One typed settings object, read from ``ZHIKU_*`` environment variables.

The seed stack's names (``DEFAULT_ROOT_PSW``, ``PG_URL``, ``OPENAI_BASE_URL``,
``CHAT_API_KEY``, ``SQL_DSN``) are accepted as aliases so an existing ``.env``
keeps working. Settings are built once (``Settings()``) at the edge — the CLI —
and passed in; nothing else reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


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

    # --- users -------------------------------------------------------------------
    root_password: str | None = Field(None, validation_alias=_env("DEFAULT_ROOT_PSW", "ZHIKU_ROOT_PASSWORD"))
    session_ttl_hours: int = Field(24 * 7, validation_alias=_env("ZHIKU_SESSION_TTL_HOURS"))

    # --- embeddings --------------------------------------------------------------
    embedding_model: str = Field("multilingual-e5-small", validation_alias=_env("ZHIKU_EMBEDDING_MODEL"))
    embed_batch_size: int = Field(32, validation_alias=_env("ZHIKU_EMBED_BATCH_SIZE"))

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
    initial_root_token: str = Field("", validation_alias=_env("INITIAL_ROOT_TOKEN", "ZHIKU_INITIAL_ROOT_TOKEN"))

    # --- import ------------------------------------------------------------------
    upload_max_bytes: int = Field(100 * 1024 * 1024, validation_alias=_env("ZHIKU_UPLOAD_MAX_BYTES"))

    # --- job queue ---------------------------------------------------------------
    job_lease_seconds: float = Field(60.0, validation_alias=_env("ZHIKU_JOB_LEASE_SECONDS"))
    job_max_attempts: int = Field(5, validation_alias=_env("ZHIKU_JOB_MAX_ATTEMPTS"))
    worker_poll_seconds: float = Field(1.0, validation_alias=_env("ZHIKU_WORKER_POLL_SECONDS"))
    worker_enabled: bool = Field(True, validation_alias=_env("ZHIKU_WORKER_ENABLED"))
    worker_concurrency: int = Field(2, ge=1, le=64, validation_alias=_env("ZHIKU_WORKER_CONCURRENCY"))

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_prod(self) -> "Settings":
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
