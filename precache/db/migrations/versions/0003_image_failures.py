"""The service's own failures per image: count, next try, version.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

COLUMNS = ('failures', 'failed_at', 'retry_at', 'failed_version',
           'retrying_since')


def upgrade():
    with op.batch_alter_table('images') as batch:
        # Existing images have not failed in a row yet: 0.
        batch.add_column(sa.Column('failures', sa.Integer(), nullable=False,
                                   server_default='0'))
        batch.add_column(sa.Column('failed_at', sa.DateTime(),
                                   nullable=True))
        batch.add_column(sa.Column('retry_at', sa.DateTime(),
                                   nullable=True))
        batch.add_column(sa.Column('failed_version', sa.String(64),
                                   nullable=True))
        batch.add_column(sa.Column('retrying_since', sa.DateTime(),
                                   nullable=True))


def downgrade():
    with op.batch_alter_table('images') as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
