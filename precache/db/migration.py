"""Schema migrations (alembic), run by ``precache-manage db sync``."""

import os

from alembic import command as alembic_command
from alembic import config as alembic_config
from alembic import migration as alembic_migration

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), 'migrations')


def _config(engine):
    config = alembic_config.Config()
    config.set_main_option('script_location', MIGRATIONS_DIR)
    config.attributes['engine'] = engine
    return config


def upgrade(engine, revision='head'):
    """Bring the schema of ``engine``'s database to ``revision``."""
    alembic_command.upgrade(_config(engine), revision)


def downgrade(engine, revision):
    """Take the schema of ``engine``'s database back to ``revision``."""
    alembic_command.downgrade(_config(engine), revision)


def current_revision(engine):
    """Return the database's schema revision (None when empty)."""
    with engine.connect() as connection:
        return alembic_migration.MigrationContext.configure(
            connection).get_current_revision()


def head_revision():
    """Return the newest revision this code knows."""
    from alembic import script
    return script.ScriptDirectory.from_config(
        _config(None)).get_current_head()


def is_known(revision):
    """Whether ``revision`` is one of this code's revisions."""
    from alembic import script
    directory = script.ScriptDirectory.from_config(_config(None))
    return revision in {rev.revision for rev in directory.walk_revisions()}
