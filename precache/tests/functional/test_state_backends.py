"""The state database's queries on MariaDB and PostgreSQL.

The unit tests of :mod:`precache.tests.unit.db.test_api` (listing,
the service's failures with images, heartbeat and inventory, reports and
rounds, ``lacking``, duplicate answers from concurrent threads, rows
inserted by a concurrent transaction) and of the retirement policy
(:mod:`precache.tests.unit.service.test_retirement`) run here on a fresh
database of each server, made by :class:`DatabaseFixture` and migrated by
``StateDB.sync()``. A server that cannot be reached skips with the reason
(fails with ``PRECACHE_REQUIRE_DATABASES=1``).
"""

from precache.tests.fixtures import databases as db_fixture
from precache.tests.unit.db import test_api as test_state_db
from precache.tests.unit.service import state_base
from precache.tests.unit.service import test_retirement


class BackendMixin(object):
    """Runs the state tests on ``self.backend``'s server."""

    backend = None

    def make_db(self):
        self.database = self.useFixture(
            db_fixture.DatabaseFixture(self.backend))
        return self.database.url


class MySQLListingTest(BackendMixin, test_state_db.ListingTests,
                       state_base.StateTestCase):
    backend = 'mysql'


class MySQLImageFailureTest(BackendMixin,
                            test_state_db.ImageFailureTests,
                            state_base.StateTestCase):
    backend = 'mysql'


class MySQLHeartbeatTest(BackendMixin, test_state_db.HeartbeatTests,
                         state_base.StateTestCase):
    backend = 'mysql'


class MySQLReportTest(BackendMixin, test_state_db.ReportTests,
                      state_base.StateTestCase):
    backend = 'mysql'


class MySQLLackingTest(BackendMixin, test_state_db.LackingTests,
                       state_base.StateTestCase):
    backend = 'mysql'


class MySQLConcurrencyTest(BackendMixin, test_state_db.ConcurrencyTests,
                           state_base.StateTestCase):
    backend = 'mysql'


class MySQLRaceTest(BackendMixin, test_state_db.RaceTests,
                    state_base.StateTestCase):
    backend = 'mysql'


class PostgreSQLListingTest(BackendMixin, test_state_db.ListingTests,
                            state_base.StateTestCase):
    backend = 'postgresql'


class PostgreSQLImageFailureTest(BackendMixin,
                                 test_state_db.ImageFailureTests,
                                 state_base.StateTestCase):
    backend = 'postgresql'


class PostgreSQLHeartbeatTest(BackendMixin, test_state_db.HeartbeatTests,
                              state_base.StateTestCase):
    backend = 'postgresql'


class PostgreSQLReportTest(BackendMixin, test_state_db.ReportTests,
                           state_base.StateTestCase):
    backend = 'postgresql'


class PostgreSQLLackingTest(BackendMixin, test_state_db.LackingTests,
                            state_base.StateTestCase):
    backend = 'postgresql'


class PostgreSQLConcurrencyTest(BackendMixin, test_state_db.ConcurrencyTests,
                                state_base.StateTestCase):
    backend = 'postgresql'


class PostgreSQLRaceTest(BackendMixin, test_state_db.InventoryRaceTests,
                         state_base.StateTestCase):
    backend = 'postgresql'


class MySQLRetirementTest(BackendMixin, test_retirement.RetirementTests,
                          state_base.StateTestCase):
    backend = 'mysql'


class PostgreSQLRetirementTest(BackendMixin, test_retirement.RetirementTests,
                               state_base.StateTestCase):
    backend = 'postgresql'
