"""ingestion: page/slide metadata and index texts on chunks, tags on collections, agent model on datasets

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_EMPTY_OBJECT = sa.text("'{}'::jsonb")
_EMPTY_LIST = sa.text("'[]'::jsonb")


def upgrade() -> None:
    # Where a chunk came from inside its file: {"page": 12} for PDFs, {"slide": 3}, {"sheet": "Q1"}, {"ocr": true}.
    op.add_column('chunks', sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), nullable=False,
                                      server_default=_EMPTY_OBJECT))
    # Extra index texts of a chunk (FastGPT's "indexes"): [{"type": "custom"|"question"|"summary", "text": "…"}].
    # The chunk's own text is always indexed and is not listed here.
    op.add_column('chunks', sa.Column('indexes', postgresql.JSONB(astext_type=sa.Text()), nullable=False,
                                      server_default=_EMPTY_LIST))
    op.add_column('collections', sa.Column('tags', postgresql.JSONB(astext_type=sa.Text()), nullable=False,
                                           server_default=_EMPTY_LIST))
    # The chat model that writes Q&A pairs for training mode "qa" (FastGPT's agentModel); None: the default.
    op.add_column('datasets', sa.Column('agent_model', sa.String(length=100), nullable=True))
    # Anything else a dataset carries (FastGPT's type, websiteConfig, ...).
    op.add_column('datasets', sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), nullable=False,
                                        server_default=_EMPTY_OBJECT))


def downgrade() -> None:
    op.drop_column('datasets', 'metadata')
    op.drop_column('datasets', 'agent_model')
    op.drop_column('collections', 'tags')
    op.drop_column('chunks', 'indexes')
    op.drop_column('chunks', 'metadata')
