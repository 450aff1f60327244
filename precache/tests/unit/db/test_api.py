"""StateDB on a real database: listings, the service's failures with
images, heartbeats, reports, rounds.

The tests are grouped in mixins so that the functional tests run the same
ones on MariaDB and PostgreSQL (``precache/tests/functional/
test_state_backends.py``); here they run on an sqlite file.
"""

import collections
import concurrent.futures

import sqlalchemy as sa

from precache.common import exception
from precache.db import api as db_api
from precache.objects import states
from precache.tests.unit.service import state_base
from precache.tests.unit.service.state_base import at
from precache.tests.unit.service.state_base import record
from precache.tests.unit.service.state_base import T0


class ListingTests(object):
    """record_listing: new images, unlisted images, failed listers."""

    def images(self):
        return {i['id']: i for i in self.db.list_images()}

    def test_new_images_are_inserted(self):
        self.db.record_listing([record('a'), record('b', 'other')],
                               complete=True, now=T0)
        images = self.images()
        self.assertEqual({'a', 'b'}, set(images))
        self.assertTrue(images['a']['listed'])
        self.assertEqual(['other'], images['b']['listed_by'])
        self.assertEqual(T0, images['a']['first_seen'])
        self.assertEqual(T0, images['a']['last_seen'])
        self.assertEqual('image a', images['a']['name'])
        self.assertEqual(1, images['a']['size'])
        self.assertFalse(images['a']['requested'])
        self.assertIsNone(images['a']['meta'])

    def test_complete_listing_marks_missing_images_unlisted(self):
        self.db.record_listing([record('a'), record('b')], complete=True,
                               now=T0)
        self.db.record_listing([record('b'), record('c')], complete=True,
                               now=at(300))
        images = self.images()
        self.assertEqual({'a', 'b', 'c'}, set(images))
        self.assertFalse(images['a']['listed'])
        self.assertEqual([], images['a']['listed_by'])
        self.assertEqual(T0, images['a']['last_seen'])
        self.assertTrue(images['b']['listed'])
        self.assertEqual(T0, images['b']['first_seen'])
        self.assertEqual(at(300), images['b']['last_seen'])
        self.assertTrue(images['c']['listed'])
        self.assertEqual(at(300), images['c']['first_seen'])

    def test_incomplete_listing_keeps_images_listed(self):
        self.db.record_listing([record('a'), record('b')], complete=True,
                               now=T0)
        self.db.record_listing([record('b')], complete=False, now=at(300))
        images = self.images()
        self.assertTrue(images['a']['listed'])
        self.assertEqual(['fake'], images['a']['listed_by'])
        self.assertEqual(T0, images['a']['last_seen'])
        self.assertEqual(at(300), images['b']['last_seen'])

    def test_empty_complete_listing_unlists_everything(self):
        self.db.record_listing([record('a')], complete=True, now=T0)
        self.db.record_listing([], complete=True, now=at(300))
        self.assertFalse(self.images()['a']['listed'])

    def test_unlisted_image_is_not_desired(self):
        self.add_image('a')
        self.add_image('b')
        self.assertEqual(['a', 'b'],
                         [i['id'] for i in self.db.desired_images(at(1))])
        self.db.record_listing([record('b')], complete=True, now=at(300))
        self.assertEqual(['b'],
                         [i['id'] for i in self.db.desired_images(at(301))])

    def test_listed_image_without_meta_is_not_desired(self):
        self.db.record_listing([record('a')], complete=True, now=T0)
        self.assertEqual([], self.db.desired_images(at(1)))

    def test_unknown_image(self):
        self.assertRaises(exception.ImageNotFound, self.db.get_image, 'nope')
        self.assertRaises(exception.ImageNotFound, self.db.release, 'nope')


def doubling(failures):
    """A backoff of 60 s doubled per failure, without cap."""
    return 60 * 2 ** (failures - 1)


class ImageFailureTests(object):
    """record_image_failure, _retry and _success: the service's backoff."""

    FAILED = ('error', 'failures', 'failed_at', 'retry_at',
              'failed_version', 'retrying_since')

    def failure(self, image_id):
        image = self.db.get_image(image_id)
        return {key: image[key] for key in self.FAILED}

    def test_new_image_has_not_failed(self):
        self.db.record_listing([record('a')], complete=True, now=T0)
        self.db.request('r', None, None, now=T0)
        for image_id in ('a', 'r'):
            self.assertEqual(dict.fromkeys(self.FAILED),
                             dict(self.failure(image_id), failures=None))
            self.assertEqual(0, self.failure(image_id)['failures'])

    def test_failures_of_one_version_double_the_wait(self):
        self.db.record_listing([record('a')], complete=True, now=T0)
        row = self.db.record_image_failure('a', 'hash mismatch', 'v1',
                                           doubling, now=at(10))
        self.assertEqual({'error': 'hash mismatch', 'failures': 1,
                          'failed_at': at(10), 'retry_at': at(70),
                          'failed_version': 'v1', 'retrying_since': None},
                         {key: row[key] for key in self.FAILED})
        self.db.record_image_retry('a', now=at(70))
        self.assertEqual(at(70), self.failure('a')['retrying_since'])
        self.db.record_image_failure('a', 'hash mismatch again', 'v1',
                                     doubling, now=at(80))
        self.assertEqual({'error': 'hash mismatch again', 'failures': 2,
                          'failed_at': at(80), 'retry_at': at(200),
                          'failed_version': 'v1', 'retrying_since': None},
                         self.failure('a'))
        # The listing does not touch the failures.
        self.db.record_listing([record('a')], complete=True, now=at(90))
        self.assertEqual(2, self.failure('a')['failures'])

    def test_a_failure_of_another_version_counts_one(self):
        self.db.record_listing([record('a')], complete=True, now=T0)
        for second in (10, 20, 30):
            self.db.record_image_failure('a', 'bad', 'v1', doubling,
                                         now=at(second))
        self.assertEqual(3, self.failure('a')['failures'])
        self.db.record_image_failure('a', 'worse', 'v2', doubling,
                                     now=at(40))
        self.assertEqual((1, at(100), 'v2'), tuple(
            self.failure('a')[key]
            for key in ('failures', 'retry_at', 'failed_version')))
        # An unknown image (no version) is another version too.
        self.db.record_image_failure('a', 'no lister knows this image',
                                     None, doubling, now=at(50))
        self.assertEqual((1, None), tuple(
            self.failure('a')[key]
            for key in ('failures', 'failed_version')))

    def test_success_forgets_the_failures(self):
        self.db.record_listing([record('a'), record('b')], complete=True,
                               now=T0)
        self.db.record_image_failure('a', 'bad', 'v1', doubling, now=at(10))
        self.db.record_image_retry('a', now=at(70))
        self.db.record_image_success('a', now=at(80))
        self.assertEqual(dict(dict.fromkeys(self.FAILED), failures=0),
                         self.failure('a'))
        self.assertEqual(at(80), self.db.get_image('a')['updated_at'])
        # An image without failures is not written.
        self.db.record_image_success('b', now=at(90))
        self.assertEqual(T0, self.db.get_image('b')['updated_at'])
        # Nor is one marked retried.
        self.db.record_image_retry('b', now=at(90))
        self.assertIsNone(self.failure('b')['retrying_since'])

    def test_served_meta_forgets_the_failures(self):
        self.db.record_listing([record('a')], complete=True, now=T0)
        self.db.record_image_failure('a', 'bad', 'v1', doubling, now=at(10))
        self.db.record_served('a', state_base.make_meta('a'), now=at(80))
        self.assertEqual(dict(dict.fromkeys(self.FAILED), failures=0),
                         self.failure('a'))

    def test_failure_of_an_unknown_image(self):
        self.assertIsNone(self.db.record_image_failure(
            'nope', 'bad', 'v1', doubling, now=T0))
        self.assertRaises(exception.ImageNotFound, self.db.get_image,
                          'nope')

    def test_concurrent_failures_are_all_counted(self):
        self.db.record_listing([record('a')], complete=True, now=T0)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda second: self.db.record_image_failure(
                'a', 'bad', 'v1', doubling, now=at(second)), range(8)))
        self.assertEqual(8, self.failure('a')['failures'])


class HeartbeatTests(object):
    """record_heartbeat: up/down, host figures, inventory corrections."""

    def test_new_host_comes_up(self):
        self.assertTrue(self.beat('h1', T0, labels=['az1']))
        host, = self.db.list_hosts()
        self.assertEqual('h1', host['name'])
        self.assertEqual(['az1'], host['labels'])
        self.assertEqual(T0, host['last_heartbeat'])
        self.assertEqual((1000, 600, 400), (host['disk_total'],
                                            host['disk_free'],
                                            host['cache_bytes']))
        self.assertEqual('1.0', host['agent_version'])

    def test_host_beating_in_time_stays_up(self):
        self.beat('h1', T0)
        self.assertFalse(self.beat('h1', at(60)))
        self.assertFalse(self.beat('h1', at(240)))

    def test_host_back_after_service_down_time_comes_up_again(self):
        self.beat('h1', T0)
        self.assertTrue(self.beat('h1', at(181), down_time=180))
        self.assertEqual([at(181)], [h['last_heartbeat']
                                     for h in self.db.list_hosts()])

    def test_live_hosts(self):
        self.beat('old', T0, labels=['x'])
        self.beat('new', at(200), labels=['y'])
        live = self.db.live_hosts(at(100))
        self.assertEqual([('new', ['y'])], [(n, lb) for _, n, lb in live])

    def _cached(self, image_id, host, now):
        self.db.record_report(host, image_id, states.CACHED,
                              {'bytes': 3, 'seconds': 1.0}, now=now)

    def test_inventory_marks_a_cached_image_missing(self):
        self.add_image('a')
        self.beat('h1', T0)
        self._cached('a', 'h1', at(10))
        self.beat('h1', at(200), inventory=[], grace=120)
        row = self.db.image_hosts('a')['h1']
        self.assertEqual(states.MISSING, row['status'])
        self.assertEqual('missing', row['code'])
        self.assertIn('inventory', row['reason'])
        # Retried at once: the backoff is over.
        self.assertEqual(at(200), row['next_attempt_at'])

    def test_inventory_keeps_an_image_reported_within_the_grace(self):
        self.add_image('a')
        self.beat('h1', T0)
        self._cached('a', 'h1', at(100))
        self.beat('h1', at(200), inventory=[], grace=120)
        self.assertEqual(states.CACHED, self.status('a', 'h1'))

    def test_inventory_keeps_images_it_lists(self):
        self.add_image('a')
        self.beat('h1', T0)
        self._cached('a', 'h1', at(10))
        self.beat('h1', at(500), inventory=['a'])
        row = self.db.image_hosts('a')['h1']
        self.assertEqual(states.CACHED, row['status'])
        self.assertEqual(3, row['bytes'])

    def test_image_in_inventory_without_a_row_is_existing(self):
        self.add_image('a')
        self.beat('h1', T0, inventory=['a'])
        row = self.db.image_hosts('a')['h1']
        self.assertEqual(states.EXISTING, row['status'])
        self.assertEqual(0, row['attempts'])
        self.assertIsNone(row['next_attempt_at'])

    def test_inventory_by_sha1_file_name(self):
        self.add_image('a')
        # A fresh StateDB (a restarted service) learns the names from the
        # database, not from what it recorded itself.
        db = db_api.StateDB(self.db.engine.url.render_as_string(
            hide_password=False))
        self.addCleanup(db.engine.dispose)
        self.db = db
        self.beat('h1', T0, inventory=[self.entry('a', by_name=True)])
        self.assertEqual(states.EXISTING, self.status('a', 'h1'))

    def test_unknown_inventory_files_are_ignored(self):
        self.add_image('a')
        self.beat('h1', T0, inventory=['stranger',
                                       {'name': 'not-a-hash',
                                        'image_id': None}])
        self.assertEqual({}, self.db.image_hosts('a'))
        self.assertEqual(['a'], [i['id'] for i in self.db.list_images()])

    def test_inventory_repairs_a_failed_row(self):
        self.add_image('a')
        self.beat('h1', T0)
        host_id = self.host_ids()['h1']
        self.db.open_round('a', 1, 'targeted', [(host_id, False, at(60))],
                           now=T0)
        self.db.record_report('h1', 'a', states.FAILED,
                              {'code': 'hash_mismatch', 'reason': 'bad'},
                              now=at(5))
        self.beat('h1', at(30), inventory=['a'])
        row = self.db.image_hosts('a')['h1']
        self.assertEqual(states.EXISTING, row['status'])
        self.assertEqual(0, row['attempts'])
        self.assertIsNone(row['reason'])
        self.assertIsNone(row['next_attempt_at'])


class ReportTests(object):
    """record_report, open_round, end_rounds."""

    def setUp(self):
        super().setUp()
        self.add_image('a')
        for name in ('h1', 'h2', 'h3'):
            self.beat(name, T0)
        self.ids = self.host_ids()

    def open(self, *hosts, **kw):
        deadline = kw.get('deadline', at(60))
        return self.db.open_round(
            'a', 1, kw.get('kind', 'fanout'),
            [(self.ids[h], False, deadline) for h in hosts],
            now=kw.get('now', T0))

    def round(self, round_id):
        with self.db.engine.connect() as conn:
            return conn.execute(sa.select(db_api.ROUNDS).where(
                db_api.ROUNDS.c.id == round_id)).first()._mapping

    def report(self, host, status, now, **detail):
        return self.db.record_report(host, 'a', status, detail, now=now)

    def test_open_round_records_pending_casts(self):
        round_id = self.open('h1', 'h2')
        rows = self.db.image_hosts('a')
        self.assertEqual({'h1', 'h2'}, set(rows))
        for row in rows.values():
            self.assertEqual(states.PENDING, row['status'])
            self.assertEqual(1, row['attempts'])
            self.assertEqual(round_id, row['round_id'])
            self.assertEqual(T0, row['cast_at'])
            self.assertEqual(at(60), row['next_attempt_at'])
        row = self.round(round_id)
        self.assertEqual((2, 0, 'fanout', None),
                         (row['total'], row['answered'], row['kind'],
                          row['ended_at']))

    def row_inserts(self):
        """How the next INSERTs into host_images reach the driver.

        :returns: ``(calls, batch)``: a list that gets ``'one'`` per
            statement sent alone and ``'many'`` per executemany (psycopg2
            sends one statement per row of it; PyMySQL makes it
            multi-row statements), and how a batch of several rows is
            to be sent.
        """
        calls = []
        batch = 'many' if self.db.engine.dialect.name == 'mysql' else 'one'

        def listener(kind):
            def record(cursor, statement, parameters, context):
                if statement.startswith('INSERT INTO host_images'):
                    calls.append(kind)
            return record

        for event, kind in (('do_execute', 'one'),
                            ('do_executemany', 'many')):
            fn = listener(kind)
            sa.event.listen(self.db.engine, event, fn)
            self.addCleanup(sa.event.remove, self.db.engine, event, fn)
        return calls, batch

    def test_a_round_inserts_its_new_rows_in_one_statement(self):
        calls, batch = self.row_inserts()
        self.open('h1', 'h2', 'h3')
        self.assertEqual([batch], calls)
        self.assertEqual({'h1', 'h2', 'h3'}, set(self.db.image_hosts('a')))

    def test_a_host_twice_in_a_round_is_inserted_then_updated(self):
        # As row by row: the second cast of h1 counts one more attempt
        # (one statement cannot upsert a row twice on PostgreSQL).
        calls, batch = self.row_inserts()
        self.open('h1', 'h2', 'h1')
        self.assertEqual([batch, 'one'], calls)
        rows = self.db.image_hosts('a')
        self.assertEqual({'h1': 2, 'h2': 1},
                         {h: r['attempts'] for h, r in rows.items()})

    def test_second_round_counts_attempts(self):
        self.open('h1')
        self.report('h1', states.FAILED, at(5), reason='no space')
        self.db.open_round('a', 1, 'targeted',
                           [(self.ids['h1'], True, at(200))], now=at(70))
        row = self.db.image_hosts('a')['h1']
        self.assertEqual((states.PENDING, 2, at(200), at(70)),
                         (row['status'], row['attempts'],
                          row['next_attempt_at'], row['cast_at']))
        self.assertEqual({self.ids['h1']: 2},
                         self.db.attempts('a', [self.ids['h1']]))

    def test_pending_downloading_cached(self):
        round_id = self.open('h1')
        self.assertIsNone(self.report('h1', states.DOWNLOADING, at(5),
                                      generation=1))
        row = self.db.image_hosts('a')['h1']
        self.assertEqual(states.DOWNLOADING, row['status'])
        self.assertEqual(round_id, row['round_id'])
        answer = self.report('h1', states.CACHED, at(20), bytes=3,
                             seconds=14.5, source='http', generation=1)
        row = self.db.image_hosts('a')['h1']
        self.assertEqual(states.CACHED, row['status'])
        self.assertEqual(0, row['attempts'])
        self.assertIsNone(row['next_attempt_at'])
        self.assertIsNone(row['round_id'])
        self.assertEqual((3, 14.5, 'http', at(20)),
                         (row['bytes'], row['seconds'], row['source'],
                          row['reported_at']))
        self.assertEqual((round_id, 1, 1, 1, 0),
                         (answer['id'], answer['index'], answer['total'],
                          answer['cached'], answer['failed']))
        self.assertEqual(at(20), answer['ended_at'])
        self.assertEqual(at(20), self.round(round_id)['ended_at'])

    def test_failed_keeps_the_backoff(self):
        self.open('h1', deadline=at(60))
        answer = self.report('h1', states.FAILED, at(5),
                             code='hash_mismatch', reason='sha512 differs')
        row = self.db.image_hosts('a')['h1']
        self.assertEqual(states.FAILED, row['status'])
        self.assertEqual(('hash_mismatch', 'sha512 differs'),
                         (row['code'], row['reason']))
        self.assertEqual(1, row['attempts'])
        self.assertEqual(at(60), row['next_attempt_at'])
        self.assertEqual((1, 0, 1), (answer['index'], answer['cached'],
                                     answer['failed']))

    def test_cached_after_failure_clears_the_reason(self):
        self.open('h1')
        self.report('h1', states.FAILED, at(5), code='x', reason='broken')
        self.report('h1', states.CACHED, at(90))
        row = self.db.image_hosts('a')['h1']
        self.assertEqual((states.CACHED, None, None, 0),
                         (row['status'], row['code'], row['reason'],
                          row['attempts']))

    def test_round_counters_and_end(self):
        round_id = self.open('h1', 'h2', 'h3')
        first = self.report('h2', states.CACHED, at(10))
        second = self.report('h1', states.FAILED, at(11), reason='x')
        self.assertEqual([1, 2], [first['index'], second['index']])
        self.assertIsNone(first['ended_at'])
        self.assertIsNone(self.round(round_id)['ended_at'])
        third = self.report('h3', states.EXISTING, at(12))
        self.assertEqual((3, 3, 2, 1), (third['index'], third['answered'],
                                        third['cached'], third['failed']))
        self.assertEqual(at(12), third['ended_at'])
        self.assertEqual(at(12), self.round(round_id)['ended_at'])

    def test_duplicate_answers_are_counted_once(self):
        round_id = self.open('h1', 'h2')
        self.assertEqual(1, self.report('h1', states.CACHED,
                                        at(10))['index'])
        self.assertIsNone(self.report('h1', states.CACHED, at(11)))
        self.assertIsNone(self.report('h1', states.EXISTING, at(12)))
        row = self.round(round_id)
        self.assertEqual((1, 1, None), (row['answered'], row['cached'],
                                        row['ended_at']))
        self.assertEqual(2, self.report('h2', states.CACHED,
                                        at(13))['index'])

    def test_report_outside_a_round(self):
        self.assertIsNone(self.report('h1', states.EXISTING, at(1)))
        self.assertEqual(states.EXISTING, self.status('a', 'h1'))

    def test_report_of_unknown_host_and_image(self):
        self.assertIsNone(self.db.record_report(
            'h9', 'z', states.CACHED, {}, now=at(1)))
        self.assertEqual(states.CACHED, self.status('z', 'h9'))
        image = self.db.get_image('z')
        self.assertFalse(image['listed'])
        self.assertFalse(self.db.is_desired(image, at(2)))
        self.assertIn('h9', self.host_ids())

    def test_end_rounds_names_the_silent_hosts(self):
        old = self.open('h1', 'h2', 'h3')
        self.report('h1', states.CACHED, at(10))
        self.report('h2', states.DOWNLOADING, at(11))
        self.add_image('b', now=at(100))
        new = self.db.open_round('b', 1, 'targeted',
                                 [(self.ids['h1'], False, at(200))],
                                 now=at(100))
        ended = self.db.end_rounds(at(50), now=at(120))
        self.assertEqual([old], [r['id'] for r in ended])
        self.assertEqual(['h2', 'h3'], sorted(ended[0]['unanswered']))
        self.assertEqual((1, 3, at(120)), (ended[0]['answered'],
                                           ended[0]['total'],
                                           ended[0]['ended_at']))
        self.assertEqual(at(120), self.round(old)['ended_at'])
        self.assertIsNone(self.round(new)['ended_at'])
        self.assertEqual([], self.db.end_rounds(at(50), now=at(130)))
        # A late answer updates the host's row but no ended round.
        self.assertIsNone(self.report('h3', states.CACHED, at(140)))
        self.assertEqual(states.CACHED, self.status('a', 'h3'))
        self.assertEqual(1, self.round(old)['answered'])


class LackingTests(object):
    """lacking(): what live hosts lack, through both of its queries."""

    def setUp(self):
        super().setUp()
        self.add_image('a')
        self.add_image('b')

    def lacking(self, now, up_since=None, deadline=None, images=('a', 'b')):
        up_since = up_since or now - (at(180) - T0)
        deadline = deadline or now - (at(600) - T0)
        names = {v: k for k, v in self.host_ids().items()}
        return sorted((names[h], i, has_row) for h, i, has_row in
                      self.db.lacking(list(images), up_since, now,
                                      deadline))

    def test_live_host_without_rows_lacks_everything(self):
        self.beat('h1', T0)
        self.assertEqual([('h1', 'a', False), ('h1', 'b', False)],
                         self.lacking(at(10)))

    def test_down_hosts_lack_nothing(self):
        self.beat('h1', T0)
        self.beat('h2', at(300))
        self.assertEqual([('h2', 'a', False), ('h2', 'b', False)],
                         self.lacking(at(310)))

    def test_no_image_no_query(self):
        self.beat('h1', T0)
        self.assertEqual([], self.lacking(at(10), images=()))

    def test_present_rows_lack_nothing(self):
        self.beat('h1', T0, inventory=['a', 'b'])
        self.beat('h2', T0, inventory=['a'])
        self.assertEqual([('h2', 'b', False)], self.lacking(at(10)))

    def test_an_image_on_every_host_is_counted_once(self):
        self.beat('h1', T0, inventory=['a', 'b'])
        self.assertEqual([], self.lacking(at(10)))
        statements = []

        def record(conn, cursor, statement, *args):
            statements.append(statement)

        sa.event.listen(self.db.engine, 'before_cursor_execute', record)
        self.addCleanup(sa.event.remove, self.db.engine,
                        'before_cursor_execute', record)
        self.assertEqual([], self.lacking(at(20)))
        self.assertTrue(statements)
        self.assertFalse([s for s in statements if 'count(*)' in s.lower()
                          and 'host_images' in s.lower()], statements)

    def test_a_new_host_ends_what_was_remembered(self):
        self.beat('h1', T0, inventory=['a', 'b'])
        self.assertEqual([], self.lacking(at(10)))
        self.beat('h2', at(15), inventory=['a'])
        self.assertEqual([('h2', 'b', False)], self.lacking(at(20)))

    def test_failed_rows_after_their_backoff(self):
        self.beat('h1', T0, inventory=['b'])
        host_id = self.host_ids()['h1']
        self.db.open_round('a', 1, 'targeted', [(host_id, False, at(60))],
                           now=T0)
        self.db.record_report('h1', 'a', states.FAILED, {'reason': 'x'},
                              now=at(5))
        self.beat('h1', at(50), inventory=['b'])
        self.assertEqual([], self.lacking(at(59)))
        self.beat('h1', at(60), inventory=['b'])
        self.assertEqual([('h1', 'a', True)], self.lacking(at(60)))

    def test_missing_rows_at_once(self):
        self.beat('h1', T0, inventory=['a', 'b'])
        self.beat('h1', at(300), inventory=['b'])
        self.assertEqual([('h1', 'a', True)], self.lacking(at(300)))

    def test_unanswered_casts_after_the_report_deadline(self):
        self.beat('h1', T0, inventory=['b'])
        host_id = self.host_ids()['h1']
        self.db.open_round('a', 1, 'fanout', [(host_id, False, at(60))],
                           now=T0)
        self.beat('h1', at(100), inventory=['b'])
        self.assertEqual([], self.lacking(at(100), deadline=at(-1)))
        self.assertEqual([('h1', 'a', True)],
                         self.lacking(at(100), deadline=T0))

    def test_unanswered_casts_wait_for_their_backoff_too(self):
        self.beat('h1', T0, inventory=['b'])
        host_id = self.host_ids()['h1']
        self.db.open_round('a', 1, 'fanout', [(host_id, False, at(500))],
                           now=T0)
        self.beat('h1', at(100), inventory=['b'])
        self.assertEqual([], self.lacking(at(100), deadline=at(50)))

    def test_downloading_without_a_cast_waits_for_the_report_deadline(self):
        # An agent catching up on its own (``desired`` at start-up)
        # reports downloading before any cast: no cast while it works.
        self.beat('h1', T0, inventory=['b'])
        self.db.record_report('h1', 'a', states.DOWNLOADING, {},
                              now=at(10))
        self.beat('h1', at(100), inventory=['b'])
        self.assertEqual([], self.lacking(at(100), deadline=at(0)))
        self.assertEqual([('h1', 'a', True)],
                         self.lacking(at(100), deadline=at(10)))

    def test_rows_of_every_host_and_a_new_host(self):
        # Every host has a row for "a": the per-image count skips its
        # host scan; a new host makes it scan again.
        self.beat('h1', T0, inventory=['a', 'b'])
        self.beat('h2', T0, inventory=['a', 'b'])
        self.assertEqual([], self.lacking(at(10)))
        self.beat('h3', at(10), inventory=['b'])
        self.assertEqual([('h3', 'a', False)], self.lacking(at(20)))

    def test_only_the_given_hosts(self):
        self.beat('h1', T0)
        self.beat('h2', T0, inventory=['a'])
        self.beat('h3', T0)
        ids = self.host_ids()
        self.assertEqual(
            [(ids['h2'], 'b', False)],
            self.db.lacking(['a', 'b'], T0, at(10), at(-600),
                            host_ids=[ids['h2']]))
        self.assertEqual([], self.db.lacking(['a', 'b'], T0, at(10),
                                             at(-600), host_ids=[]))

    def test_rows_carry_the_host_and_a_read_may_stop_early(self):
        self.beat('h1', T0, labels=['gpu'])
        self.beat('h2', T0)
        with self.db.lacking_rows(['a', 'b'], T0, at(10),
                                  at(-600)) as rows:
            first = next(rows)
        self.assertEqual(('a', False), (first.image_id, first.has_row))
        self.assertIn((first.name, first.labels),
                      [('h1', ['gpu']), ('h2', [])])
        # The query left half read is over: the database goes on.
        self.beat('h3', at(5), inventory=['a', 'b'])
        self.assertEqual(4, len(self.lacking(at(10))))

    def test_down_host_rows_do_not_hide_a_live_host(self):
        self.beat('h1', T0, inventory=['a', 'b'])
        self.beat('h2', at(300))
        self.assertEqual([('h2', 'a', False), ('h2', 'b', False)],
                         self.lacking(at(310)))


class ConcurrencyTests(object):
    """What the service's RPC thread pool does at once."""

    def test_concurrent_duplicate_answers_are_counted_once(self):
        self.add_image('a')
        hosts = ['h%02d' % i for i in range(40)]
        for host in hosts:
            self.beat(host, T0)
        ids = self.host_ids()
        round_id = self.db.open_round(
            'a', 1, 'fanout', [(ids[h], False, at(60)) for h in hosts],
            now=T0)
        # Every host answers twice at the same time (a redelivered cast,
        # an agent's own catch-up).
        order = [host for host in hosts for _ in range(2)]

        def answer(host):
            return self.db.record_report(host, 'a', states.CACHED, {},
                                         now=at(10))

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(answer, order))
        counted = collections.Counter(
            host for host, answer in zip(order, answers) if answer)
        self.assertEqual(dict.fromkeys(hosts, 1), dict(counted))
        self.assertEqual(list(range(1, 41)),
                         sorted(a['index'] for a in answers if a))
        ends = [a for a in answers if a and a['ended_at'] is not None]
        self.assertEqual([(round_id, 40, 40)],
                         [(a['id'], a['index'], a['cached'])
                          for a in ends])

    def test_concurrent_listings_and_requests_of_new_images(self):
        # Two writers (a listing run and "precache cache" calls) see the
        # same new images at once: each image gets one row, listed and
        # requested, and no write fails.
        image_ids = ['new-%02d' % i for i in range(20)]

        def write(job):
            kind, image_id = job
            if kind == 'list':
                self.db.record_listing([record(image_id)], complete=False,
                                       now=at(1))
            else:
                self.db.request(image_id, None, None, now=at(1))

        jobs = [(kind, image_id) for image_id in image_ids
                for kind in ('list', 'request')]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(write, jobs))
        images = {i['id']: i for i in self.db.list_images()}
        self.assertEqual(set(image_ids), set(images))
        self.assertEqual(
            dict.fromkeys(image_ids, (True, True, ['fake'])),
            {i: (images[i]['listed'], images[i]['requested'],
                 images[i]['listed_by']) for i in image_ids})


class RaceTests(object):
    """A row another writer inserts after this one looked for it.

    Each test makes the race happen at a chosen point: between the
    reconcile pass's planning and ``open_round``, or from another
    connection just before an INSERT (as a concurrent RPC thread or
    another service process would on MySQL or PostgreSQL).
    """

    def setUp(self):
        super().setUp()
        self.add_image('a')
        self.beat('h1', T0)
        self.ids = self.host_ids()

    def insert_before(self, table, *rows):
        """Insert ``(table, values)`` rows before our next INSERT in table.

        On a database server they come committed from another connection,
        as from a concurrent transaction. sqlite has one writer at a time:
        there they come from the writer itself, in its transaction.

        :returns: a list that is empty once the rows are inserted.
        """
        pending = [rows]
        prefix = 'INSERT INTO %s ' % table.name

        def before(conn, cursor, statement, parameters, context, many):
            if not (pending and statement.lstrip().startswith(prefix)):
                return
            for row_table, values in pending.pop():
                insert = row_table.insert().values(**values)
                if self.db.is_sqlite:
                    conn.execute(insert)
                else:
                    with self.db.engine.begin() as other:
                        other.execute(insert)

        sa.event.listen(self.db.engine, 'before_cursor_execute', before)
        self.addCleanup(sa.event.remove, self.db.engine,
                        'before_cursor_execute', before)
        return pending

    def row(self, host, image_id='a'):
        return self.db.image_hosts(image_id)[host]

    def plan(self, now):
        """What a reconcile pass reads before it opens its round."""
        lacking = self.db.lacking(['a'], at(-180), now, at(-600))
        attempts = self.db.attempts('a', [h for h, _, _ in lacking])
        return [(host_id, host_id in attempts, at(60))
                for host_id, _, _ in lacking]

    def test_round_after_a_report_inserted_the_row(self):
        casts = self.plan(at(1))
        self.assertEqual([(self.ids['h1'], False, at(60))], casts)
        # The new agent's own report lands in between.
        self.assertIsNone(self.db.record_report(
            'h1', 'a', states.DOWNLOADING, {}, now=at(2)))
        round_id = self.db.open_round('a', 1, 'targeted', casts,
                                      now=at(3))
        row = self.row('h1')
        self.assertEqual((states.PENDING, 1, round_id, at(3), at(60)),
                         (row['status'], row['attempts'], row['round_id'],
                          row['cast_at'], row['next_attempt_at']))
        answer = self.db.record_report('h1', 'a', states.CACHED, {},
                                       now=at(4))
        self.assertEqual((round_id, 1, 1, at(4)),
                         (answer['id'], answer['index'], answer['cached'],
                          answer['ended_at']))

    def test_round_after_a_heartbeat_inserted_the_row(self):
        self.beat('h2', T0)
        ids = self.host_ids()
        casts = self.plan(at(1))
        self.assertEqual({ids['h1'], ids['h2']}, {c[0] for c in casts})
        self.beat('h2', at(2), inventory=['a'])
        self.assertEqual(states.EXISTING, self.status('a', 'h2'))
        round_id = self.db.open_round('a', 1, 'targeted', casts,
                                      now=at(3))
        for host in ('h1', 'h2'):
            row = self.row(host)
            self.assertEqual((states.PENDING, 1, round_id),
                             (row['status'], row['attempts'],
                              row['round_id']), host)
        self.assertEqual(2, self._round(round_id)['total'])

    def test_round_counts_attempts_of_a_row_inserted_meanwhile(self):
        casts = self.plan(at(1))
        self.db.record_report('h1', 'a', states.FAILED,
                              {'reason': 'no space'}, now=at(2))
        self.db.open_round('a', 1, 'targeted', casts, now=at(3))
        self.db.open_round('a', 1, 'targeted', casts, now=at(4))
        self.assertEqual({self.ids['h1']: 2},
                         self.db.attempts('a', [self.ids['h1']]))

    def test_first_report_racing_a_round(self):
        # Another service process opens a round for h1 just before this
        # first report inserts h1's row.
        now = at(1)
        with self.db.engine.begin() as conn:
            round_id = conn.execute(db_api.ROUNDS.insert().values(
                image_id='a', generation=1, kind='targeted', total=1,
                answered=0, cached=0, failed=0, started_at=now,
                created_at=now)).inserted_primary_key[0]
        pending = self.insert_before(db_api.HOST_IMAGES, (
            db_api.HOST_IMAGES, dict(
                host_id=self.ids['h1'], image_id='a',
                status=states.PENDING, attempts=1, round_id=round_id,
                cast_at=now, next_attempt_at=at(60), created_at=now)))
        answer = self.db.record_report('h1', 'a', states.CACHED, {},
                                       now=at(2))
        self.assertEqual([], pending)
        self.assertEqual((round_id, 1, at(2)),
                         (answer['id'], answer['index'],
                          answer['ended_at']))
        row = self.row('h1')
        self.assertEqual((states.CACHED, 0, None),
                         (row['status'], row['attempts'], row['round_id']))

    def test_first_report_racing_a_heartbeat_of_a_new_host(self):
        pending = self.insert_before(db_api.HOSTS, (
            db_api.HOSTS, dict(name='new', labels=[], created_at=T0)))
        self.assertIsNone(self.db.record_report(
            'new', 'a', states.EXISTING, {}, now=at(1)))
        self.assertEqual([], pending)
        self.assertEqual(states.EXISTING, self.status('a', 'new'))
        self.assertEqual(['h1', 'new'],
                         [h['name'] for h in self.db.list_hosts()])

    def test_report_of_an_image_inserted_meanwhile(self):
        pending = self.insert_before(db_api.IMAGES, (
            db_api.IMAGES, dict(id='b', listed=False, requested=False,
                                created_at=T0)))
        self.db.record_report('h1', 'b', states.EXISTING, {}, now=at(1))
        self.assertEqual([], pending)
        self.assertEqual(states.EXISTING, self.status('b', 'h1'))

    def test_first_heartbeat_racing_a_report_of_a_new_host(self):
        pending = self.insert_before(db_api.HOSTS, (
            db_api.HOSTS, dict(name='new', labels=[], created_at=T0)))
        self.assertTrue(self.beat('new', at(1), inventory=['a'],
                                  labels=['gpu']))
        self.assertEqual([], pending)
        host, = [h for h in self.db.list_hosts() if h['name'] == 'new']
        self.assertEqual((at(1), ['gpu']),
                         (host['last_heartbeat'], host['labels']))
        self.assertEqual(states.EXISTING, self.status('a', 'new'))

    def test_listing_of_an_image_a_request_inserted_meanwhile(self):
        pending = self.insert_before(db_api.IMAGES, (
            db_api.IMAGES, dict(id='new', listed=False, requested=True,
                                first_seen=T0, created_at=T0)))
        self.db.record_listing([record('new')], complete=False, now=at(1))
        self.assertEqual([], pending)
        image = self.db.get_image('new')
        self.assertEqual((True, ['fake'], True, T0, at(1), 'image new'),
                         (image['listed'], image['listed_by'],
                          image['requested'], image['first_seen'],
                          image['last_seen'], image['name']))

    def test_request_of_an_image_a_listing_inserted_meanwhile(self):
        pending = self.insert_before(db_api.IMAGES, (
            db_api.IMAGES, dict(id='new', name='image new', listed=True,
                                listed_by=['fake'], requested=False,
                                first_seen=T0, last_seen=T0,
                                created_at=T0)))
        image = self.db.request('new', {'hosts': ['h*']}, at(600),
                                now=at(1))
        self.assertEqual([], pending)
        self.assertEqual((True, ['fake'], True, {'hosts': ['h*']}, at(600),
                          T0),
                         (image['listed'], image['listed_by'],
                          image['requested'], image['request_targets'],
                          image['pinned_until'], image['first_seen']))

    def _round(self, round_id):
        with self.db.engine.connect() as conn:
            return conn.execute(sa.select(db_api.ROUNDS).where(
                db_api.ROUNDS.c.id == round_id)).first()._mapping


class InventoryRaceTests(RaceTests):
    """The races of a heartbeat's inventory with a round's insert.

    Not run on MySQL: there InnoDB's foreign key check of the round's
    insert waits for the heartbeat's lock on the host row, so this race
    cannot happen.
    """

    def test_inventory_racing_a_round(self):
        # A round inserts h1's row just before the heartbeat would: the
        # heartbeat is recorded and the round's row kept.
        pending = self.insert_before(db_api.HOST_IMAGES, (
            db_api.HOST_IMAGES, dict(
                host_id=self.ids['h1'], image_id='a',
                status=states.PENDING, attempts=1, round_id=7,
                created_at=T0)))
        self.assertFalse(self.beat('h1', at(1), inventory=['a']))
        self.assertEqual([], pending)
        row = self.row('h1')
        self.assertEqual((states.PENDING, 7),
                         (row['status'], row['round_id']))
        self.assertEqual(at(1), self.db.list_hosts()[0]['last_heartbeat'])


class ListingTest(ListingTests, state_base.StateTestCase):
    pass


class ImageFailureTest(ImageFailureTests, state_base.StateTestCase):
    pass


class HeartbeatTest(HeartbeatTests, state_base.StateTestCase):
    pass


class ReportTest(ReportTests, state_base.StateTestCase):
    pass


class LackingTest(LackingTests, state_base.StateTestCase):
    pass


class ConcurrencyTest(ConcurrencyTests, state_base.StateTestCase):
    pass


class RaceTest(InventoryRaceTests, state_base.StateTestCase):
    pass
