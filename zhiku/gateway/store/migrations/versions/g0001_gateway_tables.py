"""Gateway tables: users, tokens, channels, abilities, logs, options.

Revision ID: g0001
Revises:
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "g0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gateway_abilities',
    sa.Column('group_name', sa.String(length=32), nullable=False),
    sa.Column('model', sa.String(length=190), nullable=False),
    sa.Column('channel_id', sa.BigInteger(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('priority', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('group_name', 'model', 'channel_id')
    )
    op.create_index('ix_gateway_abilities_channel', 'gateway_abilities', ['channel_id'])

    op.create_table('gateway_channels',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('type', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('base_url', sa.Text(), nullable=False),
    sa.Column('key_encrypted', sa.Text(), nullable=False),
    sa.Column('key_hint', sa.String(length=20), nullable=False),
    sa.Column('models', sa.Text(), nullable=False),
    sa.Column('groups', sa.Text(), nullable=False),
    sa.Column('model_mapping', sa.Text(), nullable=True),
    sa.Column('config', sa.Text(), nullable=True),
    sa.Column('priority', sa.BigInteger(), nullable=False),
    sa.Column('weight', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('timeout_seconds', sa.Float(), nullable=False),
    sa.Column('response_time_ms', sa.Integer(), nullable=False),
    sa.Column('used_quota', sa.BigInteger(), nullable=False),
    sa.Column('request_count', sa.BigInteger(), nullable=False),
    sa.Column('tested_at', sa.DateTime(), nullable=True),
    sa.Column('external_ref', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('external_ref')
    )
    op.create_table('gateway_logs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('type', sa.String(length=20), nullable=False),
    sa.Column('request_id', sa.String(length=40), nullable=False),
    sa.Column('endpoint', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=True),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('token_id', sa.BigInteger(), nullable=True),
    sa.Column('token_name', sa.String(length=100), nullable=False),
    sa.Column('channel_id', sa.BigInteger(), nullable=True),
    sa.Column('channel_name', sa.String(length=100), nullable=False),
    sa.Column('model', sa.String(length=190), nullable=False),
    sa.Column('upstream_model', sa.String(length=190), nullable=False),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('completion_tokens', sa.Integer(), nullable=False),
    sa.Column('usage_source', sa.String(length=20), nullable=False),
    sa.Column('quota', sa.BigInteger(), nullable=False),
    sa.Column('latency_ms', sa.Integer(), nullable=False),
    sa.Column('first_token_ms', sa.Integer(), nullable=True),
    sa.Column('is_stream', sa.Boolean(), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_gateway_logs_channel_id', 'gateway_logs', ['channel_id'])
    op.create_index('ix_gateway_logs_created_at', 'gateway_logs', ['created_at'])
    op.create_index('ix_gateway_logs_model', 'gateway_logs', ['model'])
    op.create_index('ix_gateway_logs_token_id', 'gateway_logs', ['token_id'])
    op.create_index('ix_gateway_logs_user_id', 'gateway_logs', ['user_id'])

    op.create_table('gateway_options',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('gateway_tokens',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('key_prefix', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.Column('remain_quota', sa.BigInteger(), nullable=False),
    sa.Column('unlimited_quota', sa.Boolean(), nullable=False),
    sa.Column('used_quota', sa.BigInteger(), nullable=False),
    sa.Column('request_count', sa.BigInteger(), nullable=False),
    sa.Column('models', sa.Text(), nullable=True),
    sa.Column('subnets', sa.Text(), nullable=True),
    sa.Column('rpm_limit', sa.Integer(), nullable=False),
    sa.Column('tpm_limit', sa.Integer(), nullable=False),
    sa.Column('internal', sa.Boolean(), nullable=False),
    sa.Column('external_ref', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('accessed_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('external_ref'),
    sa.UniqueConstraint('key_hash')
    )
    op.create_index('ix_gateway_tokens_user_id', 'gateway_tokens', ['user_id'])

    op.create_table('gateway_users',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('display_name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('group_name', sa.String(length=32), nullable=False),
    sa.Column('quota', sa.BigInteger(), nullable=False),
    sa.Column('used_quota', sa.BigInteger(), nullable=False),
    sa.Column('request_count', sa.BigInteger(), nullable=False),
    sa.Column('access_token_hash', sa.String(length=64), nullable=True),
    sa.Column('platform_user_id', sa.BigInteger(), nullable=True),
    sa.Column('external_ref', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('access_token_hash'),
    sa.UniqueConstraint('external_ref'),
    sa.UniqueConstraint('platform_user_id'),
    sa.UniqueConstraint('username')
    )


def downgrade() -> None:
    op.drop_table('gateway_users')
    op.drop_table('gateway_tokens')
    op.drop_table('gateway_options')
    op.drop_table('gateway_logs')
    op.drop_table('gateway_channels')
    op.drop_table('gateway_abilities')
