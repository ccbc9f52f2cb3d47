"""chats keep the user who started them (a member sees only their own) and the request's metadata; an
answer keeps FastGPT's value list (a resumed interactive run appends to it); files uploaded for chats

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('chats', sa.Column('user_id', sa.BigInteger(), nullable=True))
    op.create_foreign_key('chats_user_id_fkey', 'chats', 'users', ['user_id'], ['id'], ondelete='SET NULL')
    op.create_index('ix_chats_app_user', 'chats', ['app_id', 'user_id', 'updated_at'])
    op.add_column('chats', sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default='{}',
                                     nullable=False))
    op.add_column('chat_items', sa.Column('value', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_table(
        'chat_files',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('file_key', sa.String(length=64), nullable=False),
        sa.Column('team_id', sa.BigInteger(), nullable=False),
        sa.Column('app_id', sa.BigInteger(), nullable=True),
        sa.Column('blob_id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=500), nullable=False),
        sa.Column('content_type', sa.String(length=200), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('created_by', sa.BigInteger(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['team_id'], ['teams.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['app_id'], ['apps.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['blob_id'], ['files.id'], ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('file_key', name='uq_chat_files_key'),
    )


def downgrade() -> None:
    op.drop_table('chat_files')
    op.drop_column('chat_items', 'value')
    op.drop_column('chats', 'metadata')
    op.drop_index('ix_chats_app_user', table_name='chats')
    op.drop_constraint('chats_user_id_fkey', 'chats', type_='foreignkey')
    op.drop_column('chats', 'user_id')
