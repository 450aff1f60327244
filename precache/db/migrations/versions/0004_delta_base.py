"""Per host: the base image a delta was assembled against.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('host_images') as batch:
        # Rows reported before: no delta known (their source says how).
        batch.add_column(sa.Column('delta_base', sa.String(255),
                                   nullable=True))


def downgrade():
    with op.batch_alter_table('host_images') as batch:
        batch.drop_column('delta_base')
