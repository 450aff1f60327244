"""The service's state database: every read and write of precache's tables.

SQLAlchemy Core statements on an oslo.db engine. Bulk paths (the
reconcile query, cast bookkeeping) are single statements or
``executemany`` batches so a cycle over 10,000 hosts stays well under a
second. Every method is safe to call from several threads; with sqlite,
writes are serialised in the process (sqlite has one writer anyway).
"""

import contextlib
import os
import threading

from oslo_db.sqlalchemy import enginefacade
from oslo_log import log as logging
from oslo_utils import timeutils
import sqlalchemy as sa

from precache.common import exception
from precache.db import migration
from precache.db import models
from precache.objects import image as image_mod
from precache.objects import meta as meta_mod
from precache.objects import states

LOG = logging.getLogger(__name__)

HOSTS = models.Host.__table__
IMAGES = models.Image.__table__
HOST_IMAGES = models.HostImage.__table__
ROUNDS = models.Round.__table__
EPOCH = models.Epoch.__table__

#: Terminal answers: they end a host's part in a round.
ANSWERS = (states.CACHED, states.EXISTING, states.FAILED)

MISSING_REASON = ('absent from the host\'s inventory: removed behind '
                  'precache\'s back (e.g. aged out by Nova\'s image cache '
                  'manager)')


class ImageNotFound(exception.PrecacheException):
    msg_fmt = 'Image %(image_id)s is unknown to precache'
    code = 'image_not_found'


def utcnow():
    """Now, as the naive UTC datetime the tables store."""
    return timeutils.utcnow().replace(tzinfo=None)


def _chunks(items, size=500):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start:start + size]


class StateDB(object):
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

    def _host_id(self, conn, name, now, create=True):
        row = conn.execute(sa.select(HOSTS.c.id).where(
            HOSTS.c.name == name)).first()
        if row is not None:
            return row.id
        if not create:
            return None
        return conn.execute(HOSTS.insert().values(
            name=name, labels=[], created_at=now)).inserted_primary_key[0]

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
        now = now or utcnow()
        with self._write() as conn:
            known = self._known_image_ids(conn)
            for record in records:
                values = dict(name=record.name,
                              disk_format=record.disk_format,
                              size=record.size,
                              listed_by=list(record.listed_by),
                              listed=True, last_seen=now, updated_at=now)
                if record.id in known:
                    conn.execute(IMAGES.update().where(
                        IMAGES.c.id == record.id).values(**values))
                else:
                    conn.execute(IMAGES.insert().values(
                        id=record.id, first_seen=now, requested=False,
                        created_at=now, **values))
            if complete:
                listed_ids = [r.id for r in records]
                conn.execute(IMAGES.update().where(
                    IMAGES.c.listed.is_(True),
                    IMAGES.c.id.not_in(listed_ids)).values(
                        listed=False, listed_by=[], updated_at=now))
        self._remember_names(r.id for r in records)

    def record_served(self, image_id, meta, now=None):
        """Store the meta sent to agents and its targets; clear errors."""
        now = now or utcnow()
        with self._write() as conn:
            conn.execute(IMAGES.update().where(IMAGES.c.id == image_id)
                         .values(meta=meta, generation=meta['generation'],
                                 targets=meta.get('targets'),
                                 served_at=now, error=None, updated_at=now))

    def record_image_error(self, image_id, error, now=None):
        """Store why fetching or serving ``image_id`` failed."""
        with self._write() as conn:
            conn.execute(IMAGES.update().where(IMAGES.c.id == image_id)
                         .values(error=error, updated_at=now or utcnow()))

    def request(self, image_id, targets, pin_until, now=None):
        """Record an on-demand request (``precache cache``)."""
        now = now or utcnow()
        values = dict(requested=True, request_targets=targets,
                      pinned_until=pin_until, updated_at=now)
        with self._write() as conn:
            if image_id in self._known_image_ids(conn):
                conn.execute(IMAGES.update().where(
                    IMAGES.c.id == image_id).values(**values))
            else:
                conn.execute(IMAGES.insert().values(
                    id=image_id, listed=False, first_seen=now,
                    created_at=now, **values))
        self._remember_names([image_id])
        return self.get_image(image_id)

    def release(self, image_id, now=None):
        """Withdraw an on-demand request; nothing is deleted on hosts."""
        with self._write() as conn:
            result = conn.execute(IMAGES.update().where(
                IMAGES.c.id == image_id).values(
                    requested=False, pinned_until=None,
                    request_targets=None,
                    updated_at=now or utcnow()))
            if not result.rowcount:
                raise ImageNotFound(image_id=image_id)
        return self.get_image(image_id)

    def get_image(self, image_id):
        """Return the image's row as a dict; raise ImageNotFound."""
        with self._read() as conn:
            row = conn.execute(sa.select(IMAGES).where(
                IMAGES.c.id == image_id)).first()
        if row is None:
            raise ImageNotFound(image_id=image_id)
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
        now = now or utcnow()
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
        now = now or utcnow()
        disk = status.get('disk') or {}
        inventory = status.get('inventory') or []
        with self._write() as conn:
            known = self._known_image_ids(conn)
            row = conn.execute(sa.select(HOSTS.c.id, HOSTS.c.last_heartbeat)
                               .where(HOSTS.c.name == host)).first()
            values = dict(labels=list(status.get('labels') or []),
                          agent_version=status.get('version'),
                          last_heartbeat=now,
                          disk_total=disk.get('total'),
                          disk_free=disk.get('free'),
                          cache_bytes=disk.get('cache_bytes'),
                          updated_at=now)
            if row is None:
                host_id = conn.execute(HOSTS.insert().values(
                    name=host, created_at=now, **values)
                ).inserted_primary_key[0]
                came_up = True
            else:
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
                        reason=MISSING_REASON, next_attempt_at=now,
                        reported_at=now, updated_at=now))
        for image_id in present:
            row = rows.get(image_id)
            values = dict(status=states.EXISTING, code=None, reason=None,
                          attempts=0, next_attempt_at=None,
                          reported_at=now, updated_at=now)
            if row is None:
                conn.execute(HOST_IMAGES.insert().values(
                    host_id=host_id, image_id=image_id, created_at=now,
                    **values))
            elif row.status not in states.PRESENT:
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

    # Host x image ---------------------------------------------------------

    def image_hosts(self, image_id):
        """Return ``{host name: row dict}`` for one image."""
        query = (sa.select(HOSTS.c.name, HOST_IMAGES)
                 .select_from(HOST_IMAGES.join(
                     HOSTS, HOSTS.c.id == HOST_IMAGES.c.host_id))
                 .where(HOST_IMAGES.c.image_id == image_id))
        with self._read() as conn:
            return {r.name: dict(r._mapping) for r in conn.execute(query)}

    def status_counts(self, up_since):
        """Return ``{image_id: {status: count}}`` over the live hosts."""
        query = (sa.select(HOST_IMAGES.c.image_id, HOST_IMAGES.c.status,
                           sa.func.count())
                 .select_from(HOST_IMAGES.join(
                     HOSTS, HOSTS.c.id == HOST_IMAGES.c.host_id))
                 .where(HOSTS.c.last_heartbeat >= up_since)
                 .group_by(HOST_IMAGES.c.image_id, HOST_IMAGES.c.status))
        counts = {}
        with self._read() as conn:
            for image_id, status, count in conn.execute(query):
                counts.setdefault(image_id, {})[status] = count
        return counts

    def lacking(self, image_ids, up_since, now, report_deadline):
        """Return what live hosts lack: ``[(host_id, image_id, has_row)]``.

        A live host lacks an image when it has no row for it, when its row
        is failed or missing and its backoff ``next_attempt_at`` has
        passed, or when a cast went unanswered since before
        ``report_deadline`` (and its backoff has passed too).

        In the steady state every host has a row for every image and few
        rows are retried: both are found through indexes (the per-image
        row count, the (image_id, status) index) without visiting every
        host x image pair.
        """
        image_ids = list(image_ids)
        if not image_ids:
            return []
        hi = HOST_IMAGES
        live = HOSTS.c.last_heartbeat >= up_since
        backoff_over = sa.or_(hi.c.next_attempt_at.is_(None),
                              hi.c.next_attempt_at <= now)
        # An in-progress row without a cast was reported by an agent
        # catching up on its own: its deadline runs from the report.
        asked = sa.func.coalesce(hi.c.cast_at, hi.c.reported_at)
        retry = sa.or_(
            sa.and_(hi.c.status.in_((states.FAILED, states.MISSING)),
                    backoff_over),
            sa.and_(hi.c.status.in_(states.IN_PROGRESS),
                    sa.or_(asked.is_(None), asked <= report_deadline),
                    backoff_over))
        lacking = []
        with self._read() as conn:
            hosts = conn.execute(sa.select(sa.func.count(HOSTS.c.id))
                                 ).scalar()
            rows = dict(conn.execute(
                sa.select(hi.c.image_id, sa.func.count())
                .where(hi.c.image_id.in_(image_ids))
                .group_by(hi.c.image_id)).all())
            for image_id in image_ids:
                if rows.get(image_id, 0) >= hosts:
                    continue
                has_row = sa.exists().where(hi.c.host_id == HOSTS.c.id,
                                            hi.c.image_id == image_id)
                lacking.extend(
                    (host_id, image_id, False) for host_id, in conn.execute(
                        sa.select(HOSTS.c.id).where(live, ~has_row)))
            lacking.extend(
                (host_id, image_id, True) for host_id, image_id in
                conn.execute(sa.select(hi.c.host_id, hi.c.image_id)
                             .select_from(hi.join(
                                 HOSTS, HOSTS.c.id == hi.c.host_id))
                             .where(hi.c.image_id.in_(image_ids), live,
                                    retry)))
        return lacking

    def open_round(self, image_id, generation, kind, casts, now=None):
        """Record a batch of casts of one image as a new round.

        :param casts: ``[(host_id, has_row, next_attempt_at)]``: the hosts
            cast to, whether they have a row, and their backoff deadline.
        :returns: the round's id.
        """
        now = now or utcnow()
        with self._write() as conn:
            round_id = conn.execute(ROUNDS.insert().values(
                image_id=image_id, generation=generation, kind=kind,
                total=len(casts), answered=0, cached=0, failed=0,
                started_at=now, created_at=now)).inserted_primary_key[0]
            common = dict(status=states.PENDING, generation=generation,
                          round_id=round_id, cast_at=now, updated_at=now)
            new = [dict(host_id=host_id, image_id=image_id, attempts=1,
                        next_attempt_at=deadline, created_at=now, **common)
                   for host_id, has_row, deadline in casts if not has_row]
            for chunk in _chunks(new):
                conn.execute(HOST_IMAGES.insert(), chunk)
            # Rows sharing a backoff deadline (most of a round) are
            # updated together: a few statements, not one per host.
            by_deadline = {}
            for host_id, has_row, deadline in casts:
                if has_row:
                    by_deadline.setdefault(deadline, []).append(host_id)
            for deadline, host_ids in by_deadline.items():
                for chunk in _chunks(host_ids):
                    conn.execute(HOST_IMAGES.update().where(
                        HOST_IMAGES.c.image_id == image_id,
                        HOST_IMAGES.c.host_id.in_(chunk)).values(
                            attempts=HOST_IMAGES.c.attempts + 1,
                            next_attempt_at=deadline, **common))
        return round_id

    def attempts(self, image_id, host_ids):
        """Return ``{host_id: attempts}`` of the given hosts' rows."""
        result = {}
        with self._read() as conn:
            for chunk in _chunks(host_ids):
                result.update(conn.execute(
                    sa.select(HOST_IMAGES.c.host_id, HOST_IMAGES.c.attempts)
                    .where(HOST_IMAGES.c.image_id == image_id,
                           HOST_IMAGES.c.host_id.in_(chunk))).all())
        return result

    def record_report(self, host, image_id, status, detail, now=None):
        """Store an agent's report.

        :returns: the round the answer belongs to, as a dict with
            ``index`` (this answer's number in the round), or None when the
            report ends no open round.
        """
        now = now or utcnow()
        values = dict(status=status, code=detail.get('code'),
                      reason=detail.get('reason'),
                      bytes=detail.get('bytes'),
                      seconds=detail.get('seconds'),
                      source=detail.get('source'),
                      reported_at=now, updated_at=now)
        if detail.get('generation') is not None:
            values['generation'] = detail['generation']
        if status in states.PRESENT:
            values.update(attempts=0, next_attempt_at=None, code=None,
                          reason=None)
        with self._write() as conn:
            if image_id not in self._known_image_ids(conn):
                conn.execute(IMAGES.insert().values(
                    id=image_id, listed=False, requested=False,
                    first_seen=now, created_at=now))
                self._remember_names([image_id])
            host_id = self._host_id(conn, host, now)
            # Locked: a duplicate answer arriving at the same time waits
            # and then finds its round already answered.
            row = conn.execute(sa.select(HOST_IMAGES.c.round_id).where(
                HOST_IMAGES.c.host_id == host_id,
                HOST_IMAGES.c.image_id == image_id).with_for_update()
            ).first()
            round_id = row.round_id if row is not None else None
            if status in ANSWERS:
                values['round_id'] = None
            if row is None:
                conn.execute(HOST_IMAGES.insert().values(
                    host_id=host_id, image_id=image_id, created_at=now,
                    **dict(values, attempts=0)))
            else:
                conn.execute(HOST_IMAGES.update().where(
                    HOST_IMAGES.c.host_id == host_id,
                    HOST_IMAGES.c.image_id == image_id).values(**values))
            if round_id is None or status not in ANSWERS:
                return None
            return self._count_answer(conn, round_id, status, now)

    def _count_answer(self, conn, round_id, status, now):
        present = 1 if status in states.PRESENT else 0
        failed = 1 if status == states.FAILED else 0
        counted = conn.execute(ROUNDS.update().where(
            ROUNDS.c.id == round_id, ROUNDS.c.ended_at.is_(None)).values(
                answered=ROUNDS.c.answered + 1,
                cached=ROUNDS.c.cached + present,
                failed=ROUNDS.c.failed + failed, updated_at=now))
        if not counted.rowcount:
            # Ended (or timed out) meanwhile. A plain SELECT would not
            # tell: under MySQL's REPEATABLE READ it could return this
            # transaction's older snapshot of the round.
            return None
        row = conn.execute(sa.select(ROUNDS).where(
            ROUNDS.c.id == round_id)).first()
        result = dict(row._mapping, index=row.answered)
        if row.answered >= row.total:
            conn.execute(ROUNDS.update().where(ROUNDS.c.id == round_id)
                         .values(ended_at=now))
            result['ended_at'] = now
        return result

    def end_rounds(self, started_before, now=None):
        """End the open rounds started before ``started_before``.

        :returns: the ended rounds as dicts, each with ``unanswered``:
            the names of the hosts that never answered.
        """
        now = now or utcnow()
        with self._write() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                sa.select(ROUNDS).where(ROUNDS.c.ended_at.is_(None),
                                        ROUNDS.c.started_at <
                                        started_before))]
            for row in rows:
                row['unanswered'] = [r.name for r in conn.execute(
                    sa.select(HOSTS.c.name).select_from(HOST_IMAGES.join(
                        HOSTS, HOSTS.c.id == HOST_IMAGES.c.host_id))
                    .where(HOST_IMAGES.c.round_id == row['id']))]
                conn.execute(HOST_IMAGES.update().where(
                    HOST_IMAGES.c.round_id == row['id']).values(
                        round_id=None))
                conn.execute(ROUNDS.update().where(
                    ROUNDS.c.id == row['id']).values(ended_at=now))
                row['ended_at'] = now
        return rows


def _sqlite_pragmas(dbapi_connection, connection_record):
    cursor = dbapi_connection.cursor()
    # Readers (the CLI's queries) do not wait for the writer.
    cursor.execute('PRAGMA journal_mode=WAL')
    cursor.execute('PRAGMA busy_timeout=30000')
    cursor.close()
