"""Initial schema: hosts, images, host_images and rounds.

Revision ID: 0001
Revises:
Create Date: 2026-11-20
"""

from alembic import op
from oslo_db.sqlalchemy import types as db_types
import sqlalchemy as sa

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def _timestamps():
    return [sa.Column('created_at', sa.DateTime(), nullable=True),
            sa.Column('updated_at', sa.DateTime(), nullable=True)]


def upgrade():
    op.create_table(
        'hosts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('name', sa.String(255), nullable=False),
        sa.Column('labels', db_types.JsonEncodedList(), nullable=True),
        sa.Column('agent_version', sa.String(64), nullable=True),
        sa.Column('last_heartbeat', sa.DateTime(), nullable=True),
        sa.Column('disk_total', sa.BigInteger(), nullable=True),
        sa.Column('disk_free', sa.BigInteger(), nullable=True),
        sa.Column('cache_bytes', sa.BigInteger(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'))
    op.create_index('hosts_last_heartbeat_idx', 'hosts', ['last_heartbeat'])

    op.create_table(
        'images',
        sa.Column('id', sa.String(255), nullable=False),
        sa.Column('name', sa.String(255), nullable=True),
        sa.Column('disk_format', sa.String(32), nullable=True),
        sa.Column('size', sa.BigInteger(), nullable=True),
        sa.Column('listed_by', db_types.JsonEncodedList(), nullable=True),
        sa.Column('listed', sa.Boolean(), nullable=False),
        sa.Column('first_seen', sa.DateTime(), nullable=True),
        sa.Column('last_seen', sa.DateTime(), nullable=True),
        sa.Column('requested', sa.Boolean(), nullable=False),
        sa.Column('pinned_until', sa.DateTime(), nullable=True),
        sa.Column('targets', db_types.JsonEncodedDict(), nullable=True),
        sa.Column('request_targets', db_types.JsonEncodedDict(),
                  nullable=True),
        sa.Column('meta', db_types.JsonEncodedDict(mysql_as_long=True),
                  nullable=True),
        sa.Column('generation', sa.BigInteger(), nullable=True),
        sa.Column('served_at', sa.DateTime(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint('id'))

    op.create_table(
        'host_images',
        sa.Column('host_id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.String(255), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('code', sa.String(64), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('bytes', sa.BigInteger(), nullable=True),
        sa.Column('seconds', sa.Float(), nullable=True),
        sa.Column('source', sa.String(32), nullable=True),
        sa.Column('generation', sa.BigInteger(), nullable=True),
        sa.Column('round_id', sa.Integer(), nullable=True),
        sa.Column('cast_at', sa.DateTime(), nullable=True),
        sa.Column('reported_at', sa.DateTime(), nullable=True),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(['host_id'], ['hosts.id'],
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'],
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('host_id', 'image_id'))
    op.create_index('host_images_image_status_idx', 'host_images',
                    ['image_id', 'status'])

    op.create_table(
        'rounds',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('image_id', sa.String(255), nullable=False),
        sa.Column('generation', sa.BigInteger(), nullable=True),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('total', sa.Integer(), nullable=False),
        sa.Column('answered', sa.Integer(), nullable=False),
        sa.Column('cached', sa.Integer(), nullable=False),
        sa.Column('failed', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('ended_at', sa.DateTime(), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'],
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('rounds_image_ended_idx', 'rounds',
                    ['image_id', 'ended_at'])


def downgrade():
    op.drop_table('rounds')
    op.drop_table('host_images')
    op.drop_table('images')
    op.drop_table('hosts')
