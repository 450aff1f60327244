"""alembic environment: migrations run on the engine the caller passes."""

from alembic import context

from precache.db import models

config = context.config
engine = config.attributes['engine']

with engine.begin() as connection:
    context.configure(connection=connection,
                      target_metadata=models.BASE.metadata,
                      render_as_batch=True)
    context.run_migrations()
