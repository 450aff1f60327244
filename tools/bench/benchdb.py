"""A throwaway state database filled with hosts x images, for benchmarks.

:func:`database` gives the URL of a new, empty database and removes it
afterwards: a file in a temporary directory for sqlite, or a database with
a unique name created on a PostgreSQL or MySQL/MariaDB server (the user of
the server URL must be allowed to create and drop databases).

:func:`fill` brings the schema to head through
:meth:`precache.db.api.StateDB.sync`, records the images the way the
service does (``record_listing`` then ``record_served``) and bulk-inserts
the hosts and their host x image rows (every image cached everywhere, the
steady state of a converged cloud).
"""

import contextlib
import os
import shutil
import tempfile
import time
import uuid

from cryptography.hazmat.primitives.asymmetric import ed25519
import sqlalchemy as sa

from precache.db import api as db_api
from precache.objects import image as image_mod
from precache.objects import meta as meta_mod
from precache.objects import signing
from precache.objects import states

HOSTS = db_api.HOSTS
HOST_IMAGES = db_api.HOST_IMAGES
CHUNK = 5000


def _admin_engine(url):
    return sa.create_engine(url, isolation_level='AUTOCOMMIT')


@contextlib.contextmanager
def database(connection=None):
    """Yield the URL of a fresh database; drop it on exit.

    :param connection: None for a temporary sqlite file, or the URL of a
        PostgreSQL or MySQL/MariaDB server (its database part, if any, is
        the one connected to while creating and dropping ours).
    """
    if not connection:
        tmp = tempfile.mkdtemp(prefix='precache-bench-db-', dir='/var/tmp')
        try:
            yield 'sqlite:///%s' % os.path.join(tmp, 'precache.sqlite')
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    server = sa.engine.make_url(connection)
    backend = server.get_backend_name()
    if backend not in ('postgresql', 'mysql'):
        raise SystemExit('--connection: a postgresql or mysql URL, not %s'
                         % backend)
    if backend == 'postgresql' and not server.database:
        server = server.set(database='postgres')
    name = 'precache_bench_%s' % uuid.uuid4().hex[:12]
    admin = _admin_engine(server)
    with admin.connect() as conn:
        if backend == 'postgresql':
            conn.exec_driver_sql("CREATE DATABASE %s ENCODING 'UTF8' "
                                 "TEMPLATE template0" % name)
        else:
            conn.exec_driver_sql('CREATE DATABASE %s CHARACTER SET utf8mb4'
                                 % name)
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            if backend == 'postgresql':
                conn.execute(sa.text(
                    'SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
                    'WHERE datname = :name AND pid <> pg_backend_pid()'),
                    {'name': name})
            conn.exec_driver_sql('DROP DATABASE IF EXISTS %s' % name)
        admin.dispose()


def host_name(index):
    return 'cmp-%05d' % index


def image_id(index):
    return str(uuid.UUID(int=index + 1))


def record(image_index, listed_by='glance'):
    """An :class:`~.image.ImageRecord` like a Glance lister's."""
    iid = image_id(image_index)
    return image_mod.ImageRecord(
        id=iid, name='golden-%02d' % image_index, disk_format='qcow2',
        container_format='bare', size=(2 + image_index % 8) * 1024 ** 3,
        os_hash_algo='sha512', os_hash_value='ab' * 64,
        checksum='cd' * 16, listed_by=[listed_by])


def signer():
    """A :class:`~precache.objects.signing.Signer` with a throwaway key."""
    return signing.Signer(ed25519.Ed25519PrivateKey.generate())


def meta(rec, generation=None, epoch='b' * 32):
    """The meta the http server would send for ``rec``."""
    return meta_mod.build(
        rec, [{'method': 'http',
               'url': 'http://precache.example.org:8780/%s.zst' % rec.id,
               'compression': 'zstd', 'size': rec.size // 3,
               'hash_algo': 'sha256', 'hash_value': 'ef' * 32},
              {'method': 'glance'}], generation=generation, epoch=epoch)


def inventory(image_ids):
    """A heartbeat inventory listing ``image_ids`` as Nova base files."""
    now = time.time()
    return [{'name': image_mod.nova_cache_name(iid), 'image_id': iid,
             'size': 10 * 1024 ** 3, 'allocated': 3 * 1024 ** 3,
             'mtime': now} for iid in image_ids]


def serve(db, records, now):
    """Record ``records`` as listed (with every other image) and served."""
    db.record_listing(records, complete=False, now=now)
    for rec in records:
        db.record_served(rec.id, meta(rec), now=now)


def fill(db, hosts, images, now, labels=None):
    """Fill ``db`` (a StateDB) with ``hosts`` x ``images``, all cached.

    Every host's last heartbeat is ``now``.

    :returns: ``(records, seconds)``: the image records and the time the
        filling took.
    """
    started = time.monotonic()
    db.sync()
    records = [record(i) for i in range(images)]
    db.record_listing(records, complete=True, now=now)
    for rec in records:
        db.record_served(rec.id, meta(rec), now=now)
    served = {rec.id: db.get_image(rec.id)['generation'] for rec in records}
    disk = dict(disk_total=2 * 1024 ** 4, disk_free=1024 ** 4,
                cache_bytes=images * 3 * 1024 ** 3)
    host_rows = [dict(id=i + 1, name=host_name(i), labels=labels or [],
                      agent_version='1.0.0', last_heartbeat=now,
                      created_at=now, updated_at=now, **disk)
                 for i in range(hosts)]
    with db.engine.begin() as conn:
        for start in range(0, hosts, CHUNK):
            conn.execute(HOSTS.insert(), host_rows[start:start + CHUNK])
        batch = []
        for host_id in range(1, hosts + 1):
            for rec in records:
                batch.append(dict(
                    host_id=host_id, image_id=rec.id, status=states.CACHED,
                    attempts=0, bytes=rec.size // 3, seconds=20.0,
                    source='http', generation=served[rec.id],
                    cast_at=now, reported_at=now, created_at=now,
                    updated_at=now))
                if len(batch) >= CHUNK:
                    conn.execute(HOST_IMAGES.insert(), batch)
                    batch = []
        if batch:
            conn.execute(HOST_IMAGES.insert(), batch)
    if db.engine.dialect.name == 'postgresql':
        # The sequence behind hosts.id: ids were given explicitly.
        with db.engine.begin() as conn:
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('hosts', 'id'), "
                "(SELECT max(id) FROM hosts))")
    analyze(db)
    return records, time.monotonic() - started


def analyze(db):
    """Refresh the planner's statistics, as autovacuum/autoanalyze would."""
    dialect = db.engine.dialect.name
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level='AUTOCOMMIT')
        if dialect == 'postgresql':
            conn.exec_driver_sql('VACUUM ANALYZE')
        elif dialect == 'mysql':
            for table in ('hosts', 'images', 'host_images', 'rounds'):
                conn.exec_driver_sql('ANALYZE TABLE %s' % table).all()
        else:
            conn.exec_driver_sql('ANALYZE')
