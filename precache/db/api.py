"""The service's state database: every read and write of precache's tables.

SQLAlchemy Core statements on an oslo.db engine. Bulk paths (the
reconcile query, cast bookkeeping) are single statements or
``executemany`` batches so a cycle over 10,000 hosts stays well under a
second. Every method is safe to call from several threads; with sqlite,
writes are serialised in the process (sqlite has one writer anyway).
"""

import contextlib
import datetime
import os
import threading

from oslo_db.sqlalchemy import enginefacade
from oslo_log import log as logging
import sqlalchemy as sa

from precache.common import exception
from precache.db import distribution
from precache.db import migration
from precache.db import sql
from precache.objects import image as image_mod
from precache.objects import meta as meta_mod
from precache.objects import states

LOG = logging.getLogger(__name__)

HOSTS = sql.HOSTS
IMAGES = sql.IMAGES
HOST_IMAGES = sql.HOST_IMAGES
ROUNDS = sql.ROUNDS
EPOCH = sql.EPOCH

#: The clock of the tables (naive UTC), for the callers of this module.
utcnow = sql.utcnow

#: The columns of an image without failures.
_NO_FAILURE = dict(error=None, failures=0, failed_at=None, retry_at=None,
                   failed_version=None, retrying_since=None)


def _listing_columns(proposed):
    """What a new listing changes in an image row that exists."""
    return {column: proposed[column] for column in (
        'name', 'disk_format', 'size', 'listed_by', 'listed', 'last_seen',
        'updated_at')}


def _request_columns(proposed):
    """What an on-demand request changes in an image row that exists."""
    return {column: proposed[column] for column in (
        'requested', 'request_targets', 'pinned_until', 'updated_at')}


class StateDB(distribution.DistributionQueries):
    """precache-service's database.

    :param connection: an SQLAlchemy URL (``[database] connection``).
    :param engine_options: further ``[database]`` options for oslo.db's
        engine facade (pool sizes, retries...).
    """

    def __init__(self, connection, **engine_options):
        self._facade = enginefacade.transaction_context()
        engine_options = {k: v for k, v in engine_options.items()
                          if v is not None}
        engine_options['connection'] = connection
        self._facade.configure(**engine_options)
        self.engine = self._facade.writer.get_engine()
        if self.engine.dialect.name not in sql.SUPPORTED_DIALECTS:
            raise exception.ConfigurationError(
                reason='[database] connection: %s is not supported, use '
                       'one of %s' % (self.engine.dialect.name,
                                      ', '.join(sql.SUPPORTED_DIALECTS)))
        self.is_sqlite = self.engine.dialect.name == 'sqlite'
        if self.is_sqlite:
            sa.event.listen(self.engine, 'connect', _sqlite_pragmas)
        self._write_lock = threading.Lock()
        self._names_lock = threading.Lock()
        self._names = {}
        self._epoch = None

    @classmethod
    def from_conf(cls, conf):
        """Build from ``[database]``; creates the sqlite directory."""
        options = dict(conf.database.items())
        connection = options.pop('connection')
        if not connection:
            raise exception.ConfigurationError(
                reason='[database] connection is empty')
        url = sa.engine.make_url(connection)
        if url.get_backend_name() == 'sqlite' and url.database:
            os.makedirs(os.path.dirname(os.path.abspath(url.database)),
                        exist_ok=True)
        allowed = ('sqlite_fk', 'mysql_sql_mode', 'max_pool_size',
                   'max_overflow', 'pool_timeout', 'connection_recycle_time',
                   'max_retries', 'retry_interval', 'connection_debug',
                   'connection_trace', 'connection_parameters')
        return cls(connection, **{k: options.get(k) for k in allowed})

    # Schema ---------------------------------------------------------------

    def sync(self):
        """Upgrade the schema to the newest revision."""
        migration.upgrade(self.engine)

    def check_schema(self):
        """Raise ConfigurationError unless the schema is current."""
        current = migration.current_revision(self.engine)
        head = migration.head_revision()
        if current != head:
            raise exception.ConfigurationError(
                reason='the database schema is at revision %s, this '
                       'precache needs %s: run "precache-manage db sync"'
                       % (current, head))

    def epoch(self):
        """Return the database's epoch (32 hex digits).

        Drawn by the migration that created the ``epoch`` table; written
        here when that row is missing (a database whose tables were made
        some other way).
        """
        if self._epoch is None:
            with self._write() as conn:
                value = conn.scalar(sa.select(EPOCH.c.epoch).where(
                    EPOCH.c.id == 1))
                if value is None:
                    value = meta_mod.new_epoch()
                    conn.execute(EPOCH.insert().values(
                        id=1, epoch=value, created_at=utcnow()))
            self._epoch = value
        return self._epoch

    # Plumbing -------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self):
        lock = self._write_lock if self.is_sqlite else contextlib.nullcontext()
        with lock:
            with self.engine.begin() as conn:
                yield conn

    @contextlib.contextmanager
    def _read(self):
        with self.engine.connect() as conn:
            yield conn

    def _host_row(self, conn, name, now, *columns):
        """Return the host's row (``columns``), inserting it if unknown.

        The first heartbeat and the first report of a new host may insert
        it at the same time: the loser of the race reads the winner's row
        (a locking read: MySQL's REPEATABLE READ snapshot would not show
        it).
        """
        query = sa.select(*columns).where(HOSTS.c.name == name)
        row = conn.execute(query).first()
        if row is None:
            new = dict(name=name, labels=[], created_at=now)
            sql.insert_or_update(conn, HOSTS, [new], ('name',))
            row = conn.execute(query.with_for_update()).first()
        return row

    def _host_id(self, conn, name, now):
        return self._host_row(conn, name, now, HOSTS.c.id).id

    def image_for_name(self, name):
        """Map an inventory file name (id or sha1 of id) to an image id."""
        with self._names_lock:
            return self._names.get(name)

    def _remember_names(self, image_ids):
        with self._names_lock:
            for image_id in image_ids:
                self._names[image_id] = image_id
                self._names[image_mod.nova_cache_name(image_id)] = image_id

    def _known_image_ids(self, conn):
        ids = [r.id for r in conn.execute(sa.select(IMAGES.c.id))]
        self._remember_names(ids)
        return set(ids)

    # Images ---------------------------------------------------------------

    def record_listing(self, records, complete, now=None):
        """Store the images the listers returned.

        :param records: the :class:`~precache.objects.image.ImageRecord` list.
        :param complete: every lister answered: images not in ``records``
            are no longer listed. When a lister failed, images keep their
            listed state.
        """
        now = now or sql.utcnow()
        # One row per id (PostgreSQL refuses to upsert a row twice in one
        # statement); the last record of an id wins, as before.
        rows = {record.id: dict(
            id=record.id, name=record.name, disk_format=record.disk_format,
            size=record.size, listed_by=list(record.listed_by), listed=True,
            last_seen=now, updated_at=now, first_seen=now, requested=False,
            created_at=now) for record in records}
        with self._write() as conn:
            # One upsert: a row another writer inserted after this one
            # looked is updated, not a DBDuplicateEntry.
            sql.insert_or_update(conn, IMAGES, list(rows.values()), ('id',),
                                 update=_listing_columns)
            if complete:
                listed_ids = [r.id for r in records]
                conn.execute(IMAGES.update().where(
                    IMAGES.c.listed.is_(True),
                    IMAGES.c.id.not_in(listed_ids)).values(
                        listed=False, listed_by=[], updated_at=now))
        self._remember_names(r.id for r in records)

    def record_served(self, image_id, meta, now=None):
        """Store the meta sent to agents and its targets; clear errors."""
        now = now or sql.utcnow()
        with self._write() as conn:
            conn.execute(IMAGES.update().where(IMAGES.c.id == image_id)
                         .values(meta=meta, generation=meta['generation'],
                                 targets=meta.get('targets'),
                                 served_at=now, updated_at=now,
                                 **_NO_FAILURE))

    def record_image_failure(self, image_id, error, version, backoff,
                             now=None):
        """Store why fetching or serving ``image_id`` failed; set its retry.

        :param version: the fingerprint of the image version that failed
            (None when no lister knows the image): a failure of the same
            version as the previous one counts one more in a row, of
            another version counts 1.
        :param backoff: ``backoff(failures)`` returns the seconds to wait
            after the ``failures``-th failure in a row.
        :returns: the image's row as a dict (``failures``, ``retry_at``),
            or None when precache has no record of the image.
        """
        now = now or sql.utcnow()
        with self._write() as conn:
            row = conn.execute(
                sa.select(IMAGES.c.failures, IMAGES.c.failed_version)
                .where(IMAGES.c.id == image_id).with_for_update()).first()
            if row is None:
                return None
            failures = 1
            if row.failures and row.failed_version == version:
                failures = row.failures + 1
            conn.execute(IMAGES.update().where(IMAGES.c.id == image_id)
                         .values(error=error, failures=failures,
                                 failed_at=now, failed_version=version,
                                 retry_at=now + datetime.timedelta(
                                     seconds=backoff(failures)),
                                 retrying_since=None, updated_at=now))
        return self.get_image(image_id)

    def record_image_retry(self, image_id, now=None):
        """Note that the service tries again an image that failed.

        Until the try ends (:meth:`record_image_failure` or
        :meth:`record_image_success`), the failure is not the last word
        (``precache watch`` waits). Nothing is written for an image
        without failures.
        """
        now = now or sql.utcnow()
        with self._write() as conn:
            conn.execute(IMAGES.update().where(
                IMAGES.c.id == image_id, IMAGES.c.failures > 0).values(
                    retrying_since=now, updated_at=now))

    def record_image_success(self, image_id, now=None):
        """Forget the failures of an image fetched and served again.

        Nothing is written for an image without failures or error.
        """
        now = now or sql.utcnow()
        with self._write() as conn:
            failed = sa.or_(IMAGES.c.failures > 0,
                            IMAGES.c.error.is_not(None))
            conn.execute(IMAGES.update().where(
                IMAGES.c.id == image_id, failed).values(updated_at=now,
                                                        **_NO_FAILURE))

    def request(self, image_id, targets, pin_until, now=None):
        """Record an on-demand request (``precache cache``)."""
        now = now or sql.utcnow()
        row = dict(id=image_id, listed=False, first_seen=now,
                   created_at=now, requested=True, request_targets=targets,
                   pinned_until=pin_until, updated_at=now)
        with self._write() as conn:
            sql.insert_or_update(conn, IMAGES, [row], ('id',),
                                 update=_request_columns)
        self._remember_names([image_id])
        return self.get_image(image_id)

    def release(self, image_id, now=None):
        """Withdraw an on-demand request; nothing is deleted on hosts."""
        with self._write() as conn:
            result = conn.execute(IMAGES.update().where(
                IMAGES.c.id == image_id).values(
                    requested=False, pinned_until=None,
                    request_targets=None,
                    updated_at=now or sql.utcnow()))
            if not result.rowcount:
                raise exception.ImageNotFound(image_id=image_id,
                                              reason=sql.UNKNOWN_REASON)
        return self.get_image(image_id)

    def get_image(self, image_id):
        """Return the image's row as a dict.

        :raises ImageNotFound: precache has no record of ``image_id``.
        """
        with self._read() as conn:
            row = conn.execute(sa.select(IMAGES).where(
                IMAGES.c.id == image_id)).first()
        if row is None:
            raise exception.ImageNotFound(image_id=image_id,
                                          reason=sql.UNKNOWN_REASON)
        return dict(row._mapping)

    def list_images(self):
        """Return every image row as a dict, by name then id."""
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(
                sa.select(IMAGES).order_by(IMAGES.c.name, IMAGES.c.id))]

    @staticmethod
    def is_desired(image, now):
        """Whether agents should hold ``image`` (a row dict) now."""
        if image['listed']:
            return True
        return bool(image['requested'] and (
            image['pinned_until'] is None or image['pinned_until'] > now))

    def desired_images(self, now=None):
        """Return the rows of the images agents should hold, with meta."""
        now = now or sql.utcnow()
        return [image for image in self.list_images()
                if image['meta'] and self.is_desired(image, now)]

    # Hosts ----------------------------------------------------------------

    def record_heartbeat(self, host, status, up_since, grace_until,
                         now=None):
        """Store a heartbeat and correct the host's rows by its inventory.

        :param status: the heartbeat dict (``version``, ``labels``,
            ``disk``, ``inventory``).
        :param up_since: heartbeats at or after this time mean "up".
        :param grace_until: a row reported present after this time is
            not marked missing (the heartbeat may predate the landing).
        :returns: True when the host was unknown or down before.
        """
        now = now or sql.utcnow()
        disk = status.get('disk') or {}
        inventory = status.get('inventory') or []
        with self._write() as conn:
            known = self._known_image_ids(conn)
            row = self._host_row(conn, host, now, HOSTS.c.id,
                                 HOSTS.c.last_heartbeat)
            values = dict(labels=list(status.get('labels') or []),
                          agent_version=status.get('version'),
                          last_heartbeat=now,
                          disk_total=disk.get('total'),
                          disk_free=disk.get('free'),
                          cache_bytes=disk.get('cache_bytes'),
                          updated_at=now)
            host_id = row.id
            came_up = (row.last_heartbeat is None or
                       row.last_heartbeat < up_since)
            conn.execute(HOSTS.update().where(HOSTS.c.id == host_id)
                         .values(**values))
            present = set()
            for entry in inventory:
                image_id = entry.get('image_id')
                if image_id not in known:
                    image_id = self.image_for_name(entry.get('name'))
                if image_id in known:
                    present.add(image_id)
            self._apply_inventory(conn, host_id, present, known,
                                  grace_until, now)
        return came_up

    def _apply_inventory(self, conn, host_id, present, known, grace_until,
                         now):
        rows = {r.image_id: r for r in conn.execute(
            sa.select(HOST_IMAGES.c.image_id, HOST_IMAGES.c.status,
                      HOST_IMAGES.c.reported_at)
            .where(HOST_IMAGES.c.host_id == host_id))}
        for image_id, row in rows.items():
            if (row.status in states.PRESENT and image_id not in present and
                    (row.reported_at is None or
                     row.reported_at <= grace_until)):
                conn.execute(HOST_IMAGES.update().where(
                    HOST_IMAGES.c.host_id == host_id,
                    HOST_IMAGES.c.image_id == image_id).values(
                        status=states.MISSING, code='missing',
                        reason=sql.MISSING_REASON, next_attempt_at=now,
                        reported_at=now, updated_at=now))
        values = dict(status=states.EXISTING, code=None, reason=None,
                      attempts=0, next_attempt_at=None,
                      reported_at=now, updated_at=now)
        # A row a report or a round inserted since ``rows`` was read is
        # left as it is: the next heartbeat corrects it if need be.
        sql.insert_or_update(conn, HOST_IMAGES, [
            dict(host_id=host_id, image_id=image_id, created_at=now,
                 **values)
            for image_id in sorted(present) if image_id not in rows],
            sql.HOST_IMAGE_KEY)
        for image_id in present:
            row = rows.get(image_id)
            if row is not None and row.status not in states.PRESENT:
                conn.execute(HOST_IMAGES.update().where(
                    HOST_IMAGES.c.host_id == host_id,
                    HOST_IMAGES.c.image_id == image_id).values(**values))

    def live_hosts(self, up_since):
        """Return ``[(id, name, labels)]`` of the hosts that are up."""
        with self._read() as conn:
            return [(r.id, r.name, r.labels or []) for r in conn.execute(
                sa.select(HOSTS.c.id, HOSTS.c.name, HOSTS.c.labels)
                .where(HOSTS.c.last_heartbeat >= up_since))]

    def list_hosts(self):
        """Return every host row as a dict with its cached/failed counts."""
        counts = sa.select(
            HOST_IMAGES.c.host_id,
            sa.func.sum(sa.case((HOST_IMAGES.c.status.in_(states.PRESENT),
                                 1), else_=0)).label('images_cached'),
            sa.func.sum(sa.case((HOST_IMAGES.c.status == states.FAILED, 1),
                                else_=0)).label('images_failed'),
        ).group_by(HOST_IMAGES.c.host_id).subquery()
        query = (sa.select(HOSTS, counts.c.images_cached,
                           counts.c.images_failed)
                 .select_from(HOSTS.outerjoin(
                     counts, counts.c.host_id == HOSTS.c.id))
                 .order_by(HOSTS.c.name))
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]


def _sqlite_pragmas(dbapi_connection, connection_record):
    cursor = dbapi_connection.cursor()
    # First: every statement after it, the journal mode's included, waits
    # for a lock another connection holds instead of failing at once.
    cursor.execute('PRAGMA busy_timeout=30000')
    # Readers (the CLI's queries) do not wait for the writer.
    cursor.execute('PRAGMA journal_mode=WAL')
    cursor.close()
