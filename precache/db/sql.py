"""precache's tables and the SQL helpers every query module shares.

``insert_or_update`` is written here because SQLAlchemy has no dialect
independent upsert: it builds ``INSERT ... ON CONFLICT`` (sqlite,
PostgreSQL) or ``INSERT ... ON DUPLICATE KEY UPDATE`` (MySQL).
"""

from oslo_utils import timeutils
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

from precache.db import models
from precache.objects import states

HOSTS = models.Host.__table__
IMAGES = models.Image.__table__
HOST_IMAGES = models.HostImage.__table__
ROUNDS = models.Round.__table__
EPOCH = models.Epoch.__table__
#: The databases whose "insert or update" statements precache writes.
SUPPORTED_DIALECTS = ('sqlite', 'mysql', 'postgresql')
#: The primary key of HOST_IMAGES.
HOST_IMAGE_KEY = ('host_id', 'image_id')

#: Terminal answers: they end a host's part in a round.
ANSWERS = (states.CACHED, states.EXISTING, states.FAILED)

MISSING_REASON = ('absent from the host\'s inventory: removed behind '
                  'precache\'s back (e.g. aged out by Nova\'s image cache '
                  'manager)')


#: Why :class:`~precache.common.exception.ImageNotFound` is raised here.
UNKNOWN_REASON = ('precache has no record of it (no lister listed it and '
                  'nobody requested it)')


def utcnow():
    """Now, as the naive UTC datetime the tables store."""
    return timeutils.utcnow().replace(tzinfo=None)


def chunks(items, size=500):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start:start + size]


def insert_or_update(conn, table, rows, key, update=None):
    """INSERT ``rows``; a row whose ``key`` exists is updated instead.

    One statement per batch, race-free on sqlite and PostgreSQL
    (``INSERT ... ON CONFLICT``) and on MySQL (``INSERT ... ON DUPLICATE
    KEY UPDATE``): a row another transaction inserted after this one
    looked does not fail the insert with ``DBDuplicateEntry``.

    :param rows: dicts with the same keys.
    :param key: the names of the unique columns.
    :param update: ``update(proposed)`` returns the ``{column: value}`` to
        set on an existing row; ``proposed`` holds the rejected row's
        values as columns (``proposed.next_attempt_at``). It may hold no
        bound parameter (PyMySQL's batches allow none there): refer to
        ``proposed`` or use literal columns. None leaves the existing row
        as it is.
    """
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == 'mysql':
        stmt = mysql.insert(table)
        stmt = stmt.on_duplicate_key_update(
            update(stmt.inserted) if update else
            {key[0]: table.c[key[0]]})
    else:
        stmt = {'sqlite': sqlite, 'postgresql': postgresql}[dialect].insert(
            table)
        if update is None:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(key))
        else:
            stmt = stmt.on_conflict_do_update(index_elements=list(key),
                                              set_=update(stmt.excluded))
    for chunk in chunks(rows):
        conn.execute(stmt, chunk)
