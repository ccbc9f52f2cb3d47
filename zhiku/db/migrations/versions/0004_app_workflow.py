"""apps: a workflow (FastGPT's nodes, edges and chatConfig) for apps of type workflow

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # {"nodes": [...], "edges": [...], "chatConfig": {...}} as saved; NULL for a simple app (compiled at run time)
    op.add_column('apps', sa.Column('workflow', postgresql.JSONB(astext_type=sa.Text()), nullable=True))


def downgrade() -> None:
    op.drop_column('apps', 'workflow')
