"""The database's epoch: one row with 32 random hex digits.

Signed metas carry ``(epoch, generation)``; the epoch is drawn here, when
the schema is created (or upgraded from 0001), and never changes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import datetime
import uuid

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    table = op.create_table(
        'epoch',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('epoch', sa.String(32), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'))
    now = datetime.datetime.now(datetime.timezone.utc).replace(
        tzinfo=None, microsecond=0)
    op.bulk_insert(table, [{'id': 1, 'epoch': uuid.uuid4().hex,
                            'created_at': now}])


def downgrade():
    op.drop_table('epoch')
