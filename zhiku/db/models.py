"""ORM tables. Schema changes go through alembic migrations in ``zhiku/db/migrations``.

ORM rows never leave the service layer; routes see pydantic schemas.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, REAL
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONB, list[Any]: JSONB}


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def _updated() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), onupdate=func.now(),
                         nullable=False)


# --- users and access ---------------------------------------------------------------------------


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = _now()


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(20), default="user")  # root | admin | user
    status: Mapped[str] = mapped_column(String(20), default="active")
    # The password is one the user did not choose: generated at first start, or a well-known default
    # (DEFAULT_ROOT_PSW=1234). The web UI shows a banner while root's is.
    default_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = _now()


class TeamMember(Base):
    __tablename__ = "team_members"
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), default="member")  # owner | admin | member


class Session(Base):
    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    app_id: Mapped[int | None] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), nullable=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = _now()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# --- knowledge ----------------------------------------------------------------------------------


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("team_id", "name", name="uq_datasets_team_name"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    embedding_model: Mapped[str] = mapped_column(String(100))
    vector_dim: Mapped[int] = mapped_column(Integer)
    chunk_size: Mapped[int] = mapped_column(Integer, default=1000)
    # The chat model that writes Q&A pairs for training mode "qa" (FastGPT's agentModel); None: the default.
    agent_model: Mapped[str | None] = mapped_column(String(100), nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict, server_default="{}")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _updated()


class StoredFile(Base):
    """A content-addressed blob on disk (``files_dir/ab/abcdef…``)."""

    __tablename__ = "files"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _now()


class ChatFile(Base):
    """A file uploaded for a chat message (FastGPT's chat bucket), kept as a blob like imported files; a
    message's ``file_url`` part names it by ``file_key``, and only its team (and app, when set) reads it."""

    __tablename__ = "chat_files"
    __table_args__ = (UniqueConstraint("file_key", name="uq_chat_files_key"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    file_key: Mapped[str] = mapped_column(String(64))  # random, unguessable; the id in its URL
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    app_id: Mapped[int | None] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), nullable=True)
    blob_id: Mapped[str] = mapped_column(ForeignKey("files.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = _now()


class Collection(Base):
    __tablename__ = "collections"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(500))
    type: Mapped[str] = mapped_column(String(20))  # text | file (link, qa_table, folder later)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    error_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    file_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="RESTRICT"), nullable=True)
    training_mode: Mapped[str] = mapped_column(String(20), default="chunk")
    chunk_size: Mapped[int] = mapped_column(Integer, default=1000)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    indexed_count: Mapped[int] = mapped_column(Integer, default=0)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default="[]")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _updated()


class Chunk(Base):
    """FastGPT's "data": a question/text ``q``, an optional answer ``a``, and its index texts."""

    __tablename__ = "chunks"
    __table_args__ = (UniqueConstraint("collection_id", "chunk_index", name="uq_chunks_collection_index"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    chunk_index: Mapped[int] = mapped_column(Integer)
    q: Mapped[str] = mapped_column(Text)
    a: Mapped[str] = mapped_column(Text, default="")
    headings: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    # Where the chunk came from inside its file: {"page": 12}, {"slide": 3}, {"sheet": "Q1"}, {"ocr": true}.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict, server_default="{}")
    # Extra index texts (FastGPT's "indexes"), each embedded as its own vector:
    # [{"type": "custom" | "question" | "summary", "text": "…"}]. The chunk's own text is not listed.
    indexes: Mapped[list[Any]] = mapped_column(JSONB, default=list, server_default="[]")
    # jieba-segmented q + a, the source of this chunk's postings in ``chunk_terms``.
    fulltext: Mapped[str] = mapped_column(Text, default="")
    # 0 until the chunk's vectors are stored, so an interrupted embed job knows what is left.
    embedded: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _updated()


class ChunkVector(Base):
    """One vector per index text of a chunk, at the model's true dimension (no padding).

    Each embedding model gets a partial HNSW index on ``embedding::vector(dim)``
    (see ``zhiku.retrieval.pgvector_store.PgVectorStore.ensure_index``), so datasets with
    different models and dimensions share this table.
    """

    __tablename__ = "chunk_vectors"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    chunk_id: Mapped[int] = mapped_column(ForeignKey("chunks.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20), default="default")  # default | custom | question | summary
    part: Mapped[int] = mapped_column(Integer, default=0)
    text: Mapped[str] = mapped_column(Text)
    embedding = mapped_column(Vector(), nullable=False)


# BM25 full text. PostgreSQL's tsvector ranking has no IDF and ranks every match, which is slow and weak
# for Chinese; instead each chunk's jieba terms become postings with a precomputed BM25 term weight, read
# best-first per query term (see ``zhiku.retrieval.fulltext``). Triggers keep the document frequencies.
chunk_terms = Table(
    "chunk_terms",
    Base.metadata,
    Column("dataset_id", BigInteger, nullable=False),
    Column("term", Text, nullable=False),
    Column("chunk_id", ForeignKey("chunks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("weight", REAL, nullable=False),
    Index("ix_chunk_terms_lookup", "dataset_id", "term", text("weight DESC"), "chunk_id"),
)

fulltext_terms = Table(
    "fulltext_terms",
    Base.metadata,
    Column("dataset_id", BigInteger, primary_key=True),
    Column("term", Text, primary_key=True),
    Column("df", BigInteger, nullable=False),
)

fulltext_stats = Table(
    "fulltext_stats",
    Base.metadata,
    Column("dataset_id", BigInteger, primary_key=True),
    Column("docs", BigInteger, nullable=False),
    Column("postings", BigInteger, nullable=False),
)


# --- jobs ---------------------------------------------------------------------------------------


class Job(Base):
    """A lease-based queue row. See ``zhiku.worker.queue``."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_ready", "status", "run_after"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    collection_id: Mapped[int | None] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued | running | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    run_after: Mapped[datetime] = _now()
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    locked_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _updated()


# --- apps and chat ------------------------------------------------------------------------------


app_datasets = Table(
    "app_datasets",
    Base.metadata,
    Column("app_id", ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True),
    Column("dataset_id", ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
)


class App(Base):
    __tablename__ = "apps"
    __table_args__ = (UniqueConstraint("team_id", "name", name="uq_apps_team_name"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20), default="simple")
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str | None] = mapped_column(String(100), nullable=True)
    temperature: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    search: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # What whoever chats sees (FastGPT's chatConfig): welcomeText, openingQuestions, variables.
    chat_config: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    # A workflow app's graph as saved (FastGPT's nodes, edges, chatConfig); None: a simple app.
    workflow: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _updated()


class Chat(Base):
    __tablename__ = "chats"
    __table_args__ = (UniqueConstraint("app_id", "chat_id", name="uq_chats_app_chat"),
                      Index("ix_chats_app_updated", "app_id", "updated_at"),
                      Index("ix_chats_share_user", "share_id", "out_link_uid", "updated_at"),
                      Index("ix_chats_app_user", "app_id", "user_id", "updated_at"))
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(500), default="")
    source: Mapped[str] = mapped_column(String(20), default="api")
    variables: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # FastGPT's customTitle (the user's own name for the chat; shown instead of ``title`` when set) and top (pinned).
    custom_title: Mapped[str] = mapped_column(String(500), default="", server_default="")
    top: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # A share-link chat: the link's shareId and its user (FastGPT's outLinkUid; an API call's customUid too).
    share_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    out_link_uid: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # The user who started the chat (a login, or the creator of the API key used); a plain member's
    # histories list only their own. None: a share visitor's chat, or the user was deleted.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    # FastGPT's chat metadata: the request's ``metadata`` object merged over earlier turns', with ``originIp``.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict, server_default="{}")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _updated()


class ChatItem(Base):
    __tablename__ = "chat_items"
    __table_args__ = (Index("ix_chat_items_chat_data", "chat_pk", "data_id"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    chat_pk: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))  # user | assistant
    content: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(100), nullable=True)
    quotes: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    usage: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    feedback: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # FastGPT's userGoodFeedback / userBadFeedback text (the reason a user gave), beside good | bad above.
    feedback_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    # FastGPT's dataId: the caller's responseChatItemId for an answer, else random.
    data_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The run's per-node responseData (an answer's), customFeedbacks, and an admin's correction
    # (adminFeedback: {datasetId, collectionId, dataId, q, a}).
    response_data: Mapped[list[Any]] = mapped_column(JSONB, default=list, server_default="[]")
    custom_feedbacks: Mapped[list[Any]] = mapped_column(JSONB, default=list, server_default="[]")
    admin_feedback: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    # A run paused by an interactive node (FastGPT's interactive value item: type, params, entryNodeIds,
    # memoryEdges, nodeOutputs); the next message in the chat resumes from the last answer's.
    interactive: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    # An answer's FastGPT value list (text and interactive items in order); a resumed run appends to it.
    # None: stored before the list was kept (``content`` and ``interactive`` then stand for it).
    value: Mapped[list[Any] | None] = mapped_column(JSONB, nullable=True)
    created_at: Mapped[datetime] = _now()


class ShareLink(Base):
    """A public chat link to an app (FastGPT's outLink of type ``share``), with its limits and usage."""

    __tablename__ = "share_links"
    __table_args__ = (UniqueConstraint("share_id", name="uq_share_links_share_id"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    share_id: Mapped[str] = mapped_column(String(32))  # random, unguessable
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    type: Mapped[str] = mapped_column(String(20), default="share")
    name: Mapped[str] = mapped_column(String(200))
    response_detail: Mapped[bool] = mapped_column(Boolean, default=False)  # quotes (and their text) shown
    show_node_status: Mapped[bool] = mapped_column(Boolean, default=True)
    show_raw_source: Mapped[bool] = mapped_column(Boolean, default=False)
    # limit: expiredTime, QPM, maxUsagePoints (-1: unlimited), hookUrl
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    qpm: Mapped[int] = mapped_column(Integer, default=1000)
    max_usage_points: Mapped[float] = mapped_column(Float, default=-1.0)
    hook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    usage_points: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    last_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The QPM window: the minute being counted and the chats started in it (shared by every process).
    minute_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    minute_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _updated()
