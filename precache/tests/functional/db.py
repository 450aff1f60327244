"""A fresh database per test on sqlite, MySQL/MariaDB or PostgreSQL.

Use it from any functional test that needs precache's database::

    from precache.db import migration
    from precache.tests.functional import db

    def setUp(self):
        super().setUp()
        self.database = self.useFixture(db.DatabaseFixture('mysql'))
        migration.upgrade(self.database.engine)      # schema at head
        self.flags(group='database', connection=self.database.url)

:class:`DatabaseFixture` gives a new, empty database with a unique name
(for sqlite a file in a temporary directory) and drops it at cleanup. The
servers are given by ``$PRECACHE_TEST_MYSQL_URL`` and
``$PRECACHE_TEST_POSTGRESQL_URL``; their user must be allowed to create and
drop databases. ``tools/test-servers/databases.sh`` starts both on
127.0.0.1 with the default URLs.

A server that cannot be reached skips the test, with a reason naming the
URL and its variable; with ``PRECACHE_REQUIRE_DATABASES=1`` (as CI runs)
it fails the test instead.
"""

import os
import unittest
import uuid

import fixtures
from oslo_db.sqlalchemy import engines
import sqlalchemy as sa
from sqlalchemy.engine import url as sa_url

#: The backends :class:`DatabaseFixture` knows.
BACKENDS = ('sqlite', 'mysql', 'postgresql')
#: Set to ``1`` to fail, not skip, when a database server is unreachable.
REQUIRE_ENV = 'PRECACHE_REQUIRE_DATABASES'
#: backend -> (environment variable, default server URL).
SERVER_URLS = {
    'mysql': ('PRECACHE_TEST_MYSQL_URL', 'mysql+pymysql://root@127.0.0.1/'),
    'postgresql': ('PRECACHE_TEST_POSTGRESQL_URL',
                   'postgresql+psycopg2://postgres@127.0.0.1/postgres'),
}
#: Seconds to wait for a server to accept a connection.
CONNECT_TIMEOUT = 5
# oslo.db's default [database] mysql_sql_mode: tests see what the service
# sees (strict mode: too long a value is an error, not silently truncated).
_MYSQL_SQL_MODE = 'TRADITIONAL'
# server URL -> why it is unavailable, so that a missing server costs one
# connection attempt per test process, not one per test.
_unavailable = {}


def server_url(backend):
    """Return the server URL used for ``backend`` (``mysql``, ``postgresql``).

    :returns: a :class:`sqlalchemy.engine.URL`.
    """
    env, default = SERVER_URLS[backend]
    return sa_url.make_url(os.environ.get(env) or default)


class DatabaseFixture(fixtures.Fixture):
    """A new, empty database on ``backend``, dropped at cleanup.

    :param backend: ``sqlite``, ``mysql`` or ``postgresql``.

    After set-up:

    ``url``
        The database's URL as a string (password included), for
        ``[database] connection`` or a process of its own.
    ``engine``
        An engine on it, made by oslo.db as the service makes its own.

    The database is empty: no tables, no alembic revision. As with
    oslo.db's defaults, sqlite does not enforce foreign keys (no
    ``ON DELETE CASCADE``) and MySQL runs in the ``TRADITIONAL`` sql_mode.
    """

    def __init__(self, backend):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError('unknown database backend %r (known: %s)'
                             % (backend, ', '.join(BACKENDS)))
        self.backend = backend
        self.url = None
        self.engine = None

    def setUp(self):
        # Checked before Fixture.setUp: a SkipTest raised in _setUp would
        # be wrapped by fixtures and reported as an error, not a skip.
        if self.backend != 'sqlite':
            self._check_server()
        super().setUp()

    def _check_server(self):
        url = server_url(self.backend)
        key = url.render_as_string(hide_password=False)
        if key not in _unavailable:
            _unavailable[key] = _connect_error(url)
        error = _unavailable[key]
        if error is None:
            return
        env = SERVER_URLS[self.backend][0]
        reason = ('%(backend)s server %(url)s is unavailable (%(error)s): '
                  'set %(env)s to the URL of a server whose user may create '
                  'databases, or run tools/test-servers/databases.sh'
                  % {'backend': self.backend,
                     'url': url.render_as_string(hide_password=True),
                     'error': error, 'env': env})
        if os.environ.get(REQUIRE_ENV) == '1':
            raise AssertionError('%s=1 and %s' % (REQUIRE_ENV, reason))
        raise unittest.SkipTest(reason)

    def _setUp(self):
        if self.backend == 'sqlite':
            path = self.useFixture(fixtures.TempDir()).path
            url = sa_url.make_url(
                'sqlite:///' + os.path.join(path, 'precache.sqlite'))
        else:
            name = 'precache_test_%s' % uuid.uuid4().hex[:16]
            url = server_url(self.backend).set(database=name)
            self._create_database(name)
        self.url = url.render_as_string(hide_password=False)
        self.engine = engines.create_engine(
            self.url, mysql_sql_mode=_MYSQL_SQL_MODE, max_retries=1,
            retry_interval=1)
        # Disposed before the database is dropped (cleanups run in
        # reverse): open connections would keep PostgreSQL from dropping.
        self.addCleanup(self.engine.dispose)

    def _create_database(self, name):
        admin = _admin_engine(self.backend)
        self.addCleanup(admin.dispose)
        if self.backend == 'mysql':
            create = 'CREATE DATABASE %s CHARACTER SET utf8mb4' % name
        else:
            # template0: template1 of a cluster made in the C locale is
            # SQL_ASCII and cannot be copied into a UTF8 database.
            create = ("CREATE DATABASE %s ENCODING 'UTF8' TEMPLATE template0"
                      % name)
        with admin.connect() as connection:
            connection.exec_driver_sql(create)
        self.addCleanup(_drop_database, admin, self.backend, name)


def _connect_error(url):
    """Return why ``url`` cannot be connected to, or None when it can."""
    try:
        engine = sa.create_engine(
            url, connect_args={'connect_timeout': CONNECT_TIMEOUT})
    except ImportError as e:
        return 'no database driver: %s' % e
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql('SELECT 1')
    except sa.exc.DBAPIError as e:
        # One line: psycopg2's messages span several.
        return ' '.join(str(e.orig).split()) or type(e.orig).__name__
    finally:
        engine.dispose()
    return None


def _admin_engine(backend):
    """An autocommit engine on the server (CREATE/DROP DATABASE)."""
    return sa.create_engine(
        server_url(backend), isolation_level='AUTOCOMMIT',
        connect_args={'connect_timeout': CONNECT_TIMEOUT})


def _drop_database(admin, backend, name):
    with admin.connect() as connection:
        if backend == 'postgresql':
            # A connection the test left open (say a service process still
            # stopping) would make DROP DATABASE fail.
            connection.execute(
                sa.text('SELECT pg_terminate_backend(pid) '
                        'FROM pg_stat_activity '
                        'WHERE datname = :name AND pid <> pg_backend_pid()'),
                {'name': name})
        connection.exec_driver_sql('DROP DATABASE IF EXISTS %s' % name)
