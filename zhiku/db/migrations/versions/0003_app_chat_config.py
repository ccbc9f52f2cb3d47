"""apps: chat settings shown to whoever chats (FastGPT's chatConfig: welcome text, opening questions, variables)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # {"welcomeText": "…", "openingQuestions": ["…"], "variables": [{"key", "label", "type", "required", …}]}
    op.add_column('apps', sa.Column('chat_config', postgresql.JSONB(astext_type=sa.Text()), nullable=False,
                                    server_default=sa.text("'{}'::jsonb")))


def downgrade() -> None:
    op.drop_column('apps', 'chat_config')
