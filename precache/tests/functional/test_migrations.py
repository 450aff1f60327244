"""The schema migrations on sqlite, MySQL/MariaDB and PostgreSQL.

Each backend runs the same tests (one class per backend), each on a fresh
database of :class:`~precache.tests.fixtures.databases.DatabaseFixture`:

* upgrade to head records the head revision and creates the models' tables;
* downgrade to base leaves nothing behind, and upgrading again works;
* every revision, walked one by one from base to head, passes its own
  ``_check_<revision>`` (which writes and reads data through that
  revision's schema), the data survives a repeated upgrade to head, and
  every downgrade succeeds with the data in place;
* the models match what the migrations create (oslo.db's
  ``ModelsMigrationsSync``).

A new migration ``NNNN`` needs a ``_check_NNNN(engine)`` here; when it
changes existing data, a ``_pre_upgrade_NNNN(engine)`` seeds that data at
the revision before and its return value is passed to ``_check_NNNN`` as
``data``.
"""

import datetime

from alembic import script
from oslo_db import exception as db_exc
from oslo_db.sqlalchemy import engines
from oslo_db.sqlalchemy import test_migrations
from oslo_db.sqlalchemy import types as db_types
import sqlalchemy as sa

from precache.db import migration
from precache.db import models
from precache.objects import states
from precache.tests.fixtures import databases as db
from precache.tests.functional import base

ALEMBIC_TABLE = 'alembic_version'


def _revisions():
    """The migration scripts from base to head."""
    scripts = script.ScriptDirectory(migration.MIGRATIONS_DIR)
    return list(reversed(list(scripts.walk_revisions('base', 'heads'))))


def _tables(engine):
    """The names of the tables in ``engine``'s database but alembic's."""
    return set(sa.inspect(engine).get_table_names()) - {ALEMBIC_TABLE}


def _row_counts(engine):
    """``{table: number of rows}`` of every table but alembic's."""
    with engine.connect() as connection:
        return {name: connection.scalar(
            sa.select(sa.func.count()).select_from(sa.table(name)))
            for name in _tables(engine)}


class MigrationsMixin(test_migrations.ModelsMigrationsSync):
    """The migration tests; a subclass names its ``BACKEND``."""

    #: One of :data:`precache.tests.fixtures.databases.BACKENDS`.
    BACKEND = None

    def setUp(self):
        super().setUp()
        self.database = self.useFixture(db.DatabaseFixture(self.BACKEND))
        self.engine = self.database.engine

    # ModelsMigrationsSync's interface.

    def db_sync(self, engine):
        migration.upgrade(engine, 'head')

    def get_engine(self):
        return self.engine

    def get_metadata(self):
        return models.BASE.metadata

    # The tests.

    def test_upgrade_to_head(self):
        self.assertIsNone(migration.current_revision(self.engine))
        self.assertEqual(set(), _tables(self.engine))

        migration.upgrade(self.engine, 'head')

        self.assertEqual(migration.head_revision(),
                         migration.current_revision(self.engine))
        self.assertEqual(set(models.BASE.metadata.tables),
                         _tables(self.engine))

    def test_downgrade_to_base_and_upgrade_again(self):
        migration.upgrade(self.engine, 'head')

        migration.downgrade(self.engine, 'base')

        self.assertIsNone(migration.current_revision(self.engine))
        self.assertEqual(set(), _tables(self.engine))
        if self.engine.dialect.supports_sequences:
            self.assertEqual(
                [], sa.inspect(self.engine).get_sequence_names())

        migration.upgrade(self.engine, 'head')

        self.assertEqual(migration.head_revision(),
                         migration.current_revision(self.engine))
        self.assertEqual(set(models.BASE.metadata.tables),
                         _tables(self.engine))

    def test_walk_revisions(self):
        revisions = _revisions()
        self.assertEqual(migration.head_revision(), revisions[-1].revision)
        for rev in revisions:
            check = getattr(self, '_check_%s' % rev.revision, None)
            self.assertIsNotNone(
                check, 'migration %s has no _check_%s in %s'
                % (rev.revision, rev.revision, __name__))
            pre_upgrade = getattr(self, '_pre_upgrade_%s' % rev.revision,
                                  None)
            data = pre_upgrade(self.engine) if pre_upgrade else None

            migration.upgrade(self.engine, rev.revision)

            self.assertEqual(rev.revision,
                             migration.current_revision(self.engine))
            if pre_upgrade:
                check(self.engine, data)
            else:
                check(self.engine)

        # What an operator does on every deployment: upgrade to head again.
        counts = _row_counts(self.engine)
        self.assertGreater(sum(counts.values()), 0)
        migration.upgrade(self.engine, 'head')
        self.assertEqual(counts, _row_counts(self.engine))

        # Down again, one revision at a time, with the data in place.
        for rev in reversed(revisions):
            migration.downgrade(self.engine, rev.down_revision or 'base')
            self.assertEqual(rev.down_revision,
                             migration.current_revision(self.engine))
        self.assertEqual(set(), _tables(self.engine))

    # One check per revision.

    def _check_0001(self, engine):
        hosts = sa.table(
            'hosts', sa.column('id', sa.Integer), sa.column('name'),
            sa.column('labels', db_types.JsonEncodedList()),
            sa.column('disk_total', sa.BigInteger),
            sa.column('last_heartbeat', sa.DateTime))
        images = sa.table(
            'images', sa.column('id'), sa.column('name'),
            sa.column('listed', sa.Boolean),
            sa.column('requested', sa.Boolean),
            sa.column('targets', db_types.JsonEncodedDict()),
            sa.column('meta', db_types.JsonEncodedDict()),
            sa.column('size', sa.BigInteger))
        host_images = sa.table(
            'host_images', sa.column('host_id', sa.Integer),
            sa.column('image_id'), sa.column('status'),
            sa.column('reason'), sa.column('attempts', sa.Integer),
            sa.column('bytes', sa.BigInteger),
            sa.column('seconds', sa.Float))
        rounds = sa.table(
            'rounds', sa.column('id', sa.Integer), sa.column('image_id'),
            sa.column('kind'), sa.column('total', sa.Integer),
            sa.column('answered', sa.Integer),
            sa.column('cached', sa.Integer), sa.column('failed', sa.Integer),
            sa.column('started_at', sa.DateTime))
        # Whole seconds: MySQL's DATETIME keeps no fraction.
        now = datetime.datetime(2026, 11, 20, 12, 34, 56)
        tib = 2 ** 40
        host_rows = [
            {'name': 'cmp-a-001', 'labels': ['az1', 'gpu'],
             'disk_total': 12 * tib, 'last_heartbeat': now},
            {'name': 'cmp-a-002', 'labels': [], 'disk_total': tib,
             'last_heartbeat': None},
        ]
        image = {
            'id': 'a6b1ef43-7c1c-4a1e-9d7e-3f0b2b8c9d10',
            # Not ASCII, but no character beyond U+FFFF: oslo.db connects
            # to MySQL with charset=utf8 (3 bytes) unless the URL asks for
            # ?charset=utf8mb4.
            'name': 'Debian 12 \u2013 golden, d\xe9j\xe0 vu',
            'listed': True, 'requested': False,
            'targets': {'hosts': ['cmp-a-001'], 'labels': ['az1']},
            # Larger than a TEXT column of MySQL (64 KiB): the meta of an
            # image with many properties must fit.
            'meta': {'version': '1.0', 'properties': {
                'p%05d' % i: 'v' * 64 for i in range(1200)}},
            'size': 5 * tib,
        }
        self.assertGreater(len(db_types.JsonEncodedDict().process_bind_param(
            image['meta'], engine.dialect)), 2 ** 16)

        with engine.begin() as connection:
            connection.execute(hosts.insert(), host_rows)
            connection.execute(images.insert(), [image])
            host_ids = dict(connection.execute(
                sa.select(hosts.c.name, hosts.c.id)).all())
            status_rows = [
                {'host_id': host_ids['cmp-a-001'], 'image_id': image['id'],
                 'status': states.CACHED, 'reason': None, 'attempts': 1,
                 'bytes': 5 * tib, 'seconds': 812.25},
                {'host_id': host_ids['cmp-a-002'], 'image_id': image['id'],
                 'status': states.FAILED,
                 'reason': 'not enough disk: ' + 'x' * 4000,
                 'attempts': 3, 'bytes': None, 'seconds': None},
            ]
            connection.execute(host_images.insert(), status_rows)
            connection.execute(rounds.insert(), [{
                'image_id': image['id'], 'kind': 'fanout', 'total': 2,
                'answered': 2, 'cached': 1, 'failed': 1, 'started_at': now}])

        with engine.connect() as connection:
            got_hosts = [row._asdict() for row in connection.execute(
                sa.select(hosts.c.name, hosts.c.labels, hosts.c.disk_total,
                          hosts.c.last_heartbeat).order_by(hosts.c.name))]
            got_image = connection.execute(
                sa.select(*[images.c[key] for key in image])).one()._asdict()
            got_statuses = [row._asdict() for row in connection.execute(
                sa.select(*[host_images.c[key] for key in status_rows[0]])
                .order_by(host_images.c.host_id))]
        self.assertEqual(host_rows, got_hosts)
        self.assertEqual(image, got_image)
        self.assertEqual(status_rows, got_statuses)

        # hosts.name is unique; oslo.db reports it as such on every backend.
        with engine.begin() as connection:
            self.assertRaises(db_exc.DBDuplicateEntry, connection.execute,
                              hosts.insert(), [{'name': 'cmp-a-002'}])

        # Deleting a host deletes its statuses (ON DELETE CASCADE). sqlite
        # enforces foreign keys only when asked to, so ask.
        fk_engine = engines.create_engine(self.database.url, sqlite_fk=True)
        self.addCleanup(fk_engine.dispose)
        with fk_engine.begin() as connection:
            connection.execute(hosts.delete().where(
                hosts.c.name == 'cmp-a-002'))
        with engine.connect() as connection:
            left = connection.execute(
                sa.select(host_images.c.host_id)).scalars().all()
        self.assertEqual([host_ids['cmp-a-001']], left)
        # A status of an unknown host is refused (foreign key).
        with fk_engine.connect() as connection:
            self.assertRaises(
                db_exc.DBReferenceError, connection.execute,
                host_images.insert(), [{
                    'host_id': max(host_ids.values()) + 1,
                    'image_id': image['id'], 'status': states.PENDING,
                    'attempts': 0}])

    def _check_0002(self, engine):
        epoch = sa.table('epoch', sa.column('id', sa.Integer),
                         sa.column('epoch'))
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(epoch.c.id, epoch.c.epoch)).all()
        # One row, drawn when the table was made: 32 hex digits.
        self.assertEqual(1, len(rows))
        self.assertEqual(1, rows[0].id)
        self.assertRegex(rows[0].epoch, '^[0-9a-f]{32}$')
        # A second row is refused (the primary key is always 1).
        with engine.connect() as connection:
            self.assertRaises(db_exc.DBDuplicateEntry, connection.execute,
                              epoch.insert(), [{'id': 1, 'epoch': 'f' * 32}])

    def _pre_upgrade_0003(self, engine):
        """An image listed and failing before 0003: no count yet."""
        images = sa.table('images', sa.column('id'), sa.column('listed'),
                          sa.column('requested'), sa.column('error'))
        image = {'id': 'c0ffee00-0003-4a1e-9d7e-3f0b2b8c9d10',
                 'listed': True, 'requested': False,
                 'error': 'hash mismatch'}
        with engine.begin() as connection:
            connection.execute(images.insert(), [image])
        return image

    def _check_0003(self, engine, data):
        images = sa.table(
            'images', sa.column('id'), sa.column('listed', sa.Boolean),
            sa.column('requested', sa.Boolean), sa.column('error'),
            sa.column('failures', sa.Integer),
            sa.column('failed_at', sa.DateTime),
            sa.column('retry_at', sa.DateTime),
            sa.column('failed_version'),
            sa.column('retrying_since', sa.DateTime))
        columns = ('error', 'failures', 'failed_at', 'retry_at',
                   'failed_version', 'retrying_since')

        def read(image_id):
            with engine.connect() as connection:
                return connection.execute(
                    sa.select(*[images.c[key] for key in columns])
                    .where(images.c.id == image_id)).one()._asdict()

        # The image of 0001 keeps its error and has failed 0 times in a
        # row (the server default): it is tried at the next run.
        self.assertEqual({'error': 'hash mismatch', 'failures': 0,
                          'failed_at': None, 'retry_at': None,
                          'failed_version': None, 'retrying_since': None},
                         read(data['id']))

        # Whole seconds: MySQL's DATETIME keeps no fraction.
        failed_at = datetime.datetime(2026, 12, 1, 8, 0, 0)
        failing = {
            'error': 'hash mismatch: ' + 'x' * 4000,
            'failures': 7,
            'failed_at': failed_at,
            'retry_at': failed_at + datetime.timedelta(hours=1),
            # A sha256 hex digest, the fingerprint's size.
            'failed_version': 'f' * 64,
            'retrying_since': failed_at + datetime.timedelta(seconds=5),
        }
        with engine.begin() as connection:
            connection.execute(images.insert(), [dict(
                failing, id='c0ffee00-0003-failing', listed=True,
                requested=True)])
            # An insert that names no count gets 0.
            connection.execute(images.insert(), [{
                'id': 'c0ffee00-0003-new', 'listed': False,
                'requested': True}])
        self.assertEqual(failing, read('c0ffee00-0003-failing'))
        self.assertEqual(0, read('c0ffee00-0003-new')['failures'])
        with engine.begin() as connection:
            self.assertRaises(db_exc.DBError, connection.execute,
                              images.update().where(
                                  images.c.id == data['id']).values(
                                      failures=None))

    def _check_0004(self, engine):
        host_images = sa.table('host_images', sa.column('host_id'),
                               sa.column('image_id'), sa.column('source'),
                               sa.column('delta_base'))
        # Rows reported before 0004 name no base.
        with engine.connect() as connection:
            rows = connection.execute(sa.select(
                host_images.c.host_id, host_images.c.image_id,
                host_images.c.delta_base)).all()
        self.assertTrue(rows)
        self.assertEqual({None}, {row.delta_base for row in rows})
        # A Glance image id, or any id up to the images' own length.
        base_id = 'b' * 255
        row = rows[0]
        with engine.begin() as connection:
            connection.execute(host_images.update().where(
                host_images.c.host_id == row.host_id,
                host_images.c.image_id == row.image_id).values(
                    source='delta', delta_base=base_id))
        with engine.connect() as connection:
            self.assertEqual(('delta', base_id), tuple(connection.execute(
                sa.select(host_images.c.source, host_images.c.delta_base)
                .where(host_images.c.host_id == row.host_id,
                       host_images.c.image_id == row.image_id)).one()))


class TestMigrationsSQLite(MigrationsMixin, base.FunctionalTestCase):
    BACKEND = 'sqlite'


class TestMigrationsMySQL(MigrationsMixin, base.FunctionalTestCase):
    BACKEND = 'mysql'


class TestMigrationsPostgreSQL(MigrationsMixin, base.FunctionalTestCase):
    BACKEND = 'postgresql'
