"""users: default_password, set while a password is one its user did not choose (generated, or a
well-known default such as FastGPT's 1234), so the web UI can warn until root changes it

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('users', sa.Column('default_password', sa.Boolean(), nullable=False,
                                     server_default=sa.text('false')))


def downgrade() -> None:
    op.drop_column('users', 'default_password')
