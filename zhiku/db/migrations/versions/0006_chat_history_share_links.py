"""chat histories and share links (FastGPT's history/record APIs and outLinks): chats get customTitle, top
and the share link and user they belong to; chat items get FastGPT's dataId, the run's responseData, custom
and admin feedback and the feedback text; share_links holds each link with its limits and usage

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('chats', sa.Column('custom_title', sa.String(length=500), nullable=False, server_default=''))
    op.add_column('chats', sa.Column('top', sa.Boolean(), nullable=False, server_default=sa.text('false')))
    op.add_column('chats', sa.Column('share_id', sa.String(length=32), nullable=True))
    op.add_column('chats', sa.Column('out_link_uid', sa.String(length=255), nullable=True))
    op.create_index('ix_chats_app_updated', 'chats', ['app_id', 'updated_at'])
    op.create_index('ix_chats_share_user', 'chats', ['share_id', 'out_link_uid', 'updated_at'])
    op.add_column('chat_items', sa.Column('data_id', sa.String(length=200), nullable=True))
    op.add_column('chat_items', sa.Column('response_data', postgresql.JSONB(astext_type=sa.Text()), nullable=False,
                                          server_default='[]'))
    op.add_column('chat_items', sa.Column('custom_feedbacks', postgresql.JSONB(astext_type=sa.Text()),
                                          nullable=False, server_default='[]'))
    op.add_column('chat_items', sa.Column('admin_feedback', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('chat_items', sa.Column('feedback_text', sa.Text(), nullable=True))
    op.create_index('ix_chat_items_chat_data', 'chat_items', ['chat_pk', 'data_id'])
    op.create_table(
        'share_links',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('share_id', sa.String(length=32), nullable=False),
        sa.Column('team_id', sa.BigInteger(), nullable=False),
        sa.Column('app_id', sa.BigInteger(), nullable=False),
        sa.Column('created_by', sa.BigInteger(), nullable=True),
        sa.Column('type', sa.String(length=20), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('response_detail', sa.Boolean(), nullable=False),
        sa.Column('show_node_status', sa.Boolean(), nullable=False),
        sa.Column('show_raw_source', sa.Boolean(), nullable=False),
        sa.Column('expired_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('qpm', sa.Integer(), nullable=False),
        sa.Column('max_usage_points', sa.Float(), nullable=False),
        sa.Column('hook_url', sa.Text(), nullable=True),
        sa.Column('usage_points', sa.Float(), nullable=False, server_default='0'),
        sa.Column('last_time', sa.DateTime(timezone=True), nullable=True),
        sa.Column('minute_start', sa.DateTime(timezone=True), nullable=True),
        sa.Column('minute_count', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['app_id'], ['apps.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['team_id'], ['teams.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('share_id', name='uq_share_links_share_id'),
    )
    op.create_index('ix_share_links_app_id', 'share_links', ['app_id'])


def downgrade() -> None:
    op.drop_index('ix_share_links_app_id', table_name='share_links')
    op.drop_table('share_links')
    op.drop_index('ix_chat_items_chat_data', table_name='chat_items')
    for column in ('feedback_text', 'admin_feedback', 'custom_feedbacks', 'response_data', 'data_id'):
        op.drop_column('chat_items', column)
    op.drop_index('ix_chats_share_user', table_name='chats')
    op.drop_index('ix_chats_app_updated', table_name='chats')
    for column in ('out_link_uid', 'share_id', 'top', 'custom_title'):
        op.drop_column('chats', column)
