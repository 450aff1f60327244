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

    A batch is one multi-row statement on PostgreSQL and MySQL (and on
    sqlite >= 3.35), so what it costs follows its rows, not one round
    trip per row (see :func:`_batched`). Rows are applied in their
    order: a key given twice is inserted by the first row and updated by
    the next, as row by row.

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
        stmt = _batched(conn, stmt, table, key)
    for batch in _unique_batches(rows, key):
        conn.execute(stmt, batch).close()


def _batched(conn, stmt, table, key):
    """Make an ``INSERT ... ON CONFLICT`` executemany one statement per batch.

    SQLAlchemy sends an executemany INSERT as multi-row statements
    ("insertmanyvalues"), but (2.1) not one with an ON CONFLICT
    clause unless it has RETURNING: without it, psycopg2 sent one
    statement, and one round trip, per row (a round's 2,000 new rows
    were 2,000 statements). ``RETURNING`` the key, which nobody reads,
    keeps the rows of a batch in one statement. (PyMySQL rewrites an
    executemany INSERT into multi-row statements itself.)
    """
    if not conn.dialect.insert_executemany_returning:
        return stmt
    return stmt.returning(*(table.c[name] for name in key))


def _unique_batches(rows, key, size=500):
    """Split ``rows`` into batches without a ``key`` twice in one.

    PostgreSQL refuses to upsert a row twice in one statement ("ON
    CONFLICT DO UPDATE command cannot affect row a second time"): a row
    whose key is already in the batch starts the next one, so the rows
    are still applied in their order.
    """
    batch, seen = [], set()
    for row in rows:
        row_key = tuple(row[name] for name in key)
        if len(batch) >= size or row_key in seen:
            yield batch
            batch, seen = [], set()
        batch.append(row)
        seen.add(row_key)
    if batch:
        yield batch
