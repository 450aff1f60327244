"""Benchmark of a convergence pass over 10,000 hosts x 50 images.

Builds a real state database (a temporary sqlite file by default; with
``--connection`` a fresh database created on that PostgreSQL or
MySQL/MariaDB server and dropped afterwards) through
:class:`precache.db.api.StateDB`, every image cached on every host, then
times :meth:`precache.service.convergence.Reconciler.reconcile` in these
scenarios:

``steady``
    everything cached: nothing to cast.
``new image, caps raised``
    one more image, on no host yet: one cast per host, with
    ``max_casts_per_cycle`` raised so that every cast is sent.
``new image, default caps``
    the same with the default caps: the rest is deferred.
``5% failed past backoff`` (default caps, then caps raised)
    5 % of the host x image rows failed, their backoff over.
``2% hosts down, new image``
    the new image again; 2 % of the hosts are down and every one of their
    rows failed: they must get nothing.
``one host back up``
    the pass a heartbeat triggers when a host comes back
    (``reconcile(hosts=[host])``); the host lacks 5 images.

The agents' RPC API is a fake that only counts casts (sending them is the
broker's cost, measured by heartbeat_benchmark.py's side of the broker);
notifications go through oslo.messaging's Notifier on the ``fake:/``
transport. Each cycle runs on fresh state: what a cycle changes (new rows,
rows marked pending, rounds) is undone between cycles, outside the timing.
The table shows the casts of a cycle (checked against the scenario's
expected count), the median and worst seconds of ``--cycles`` cycles, and
the goal: under a second.

With ``--instances 2`` (a PostgreSQL or MySQL ``--connection``), a second
service instance shares the database, as in a high-availability
deployment: it follows (its leadership says so; the election itself is
measured by failover_benchmark.py). During each timed cycle of the leader
it runs its own convergence pass, which must send nothing, and answers
agents' ``desired`` calls in a loop from the same database; the table then
also shows how many it answered per cycle. The follower is a thread of
this process (its own engine and connections), so it also competes for
the interpreter lock: the leader's times are an upper bound of what two
processes on two hosts would show.

Usage::

    python tools/bench/reconcile_benchmark.py [--hosts 10000]
        [--images 50] [--cycles 5]
        [--connection postgresql+psycopg2://postgres@127.0.0.1/]
        [--instances 2]
"""

import argparse
import collections
import datetime
import os
import random
import statistics
import sys
import threading
import time

# Selects oslo.service's threading backend before anything imports
# oslo_service.service (oslo.messaging does).
from precache import cmd  # noqa: F401

import sqlalchemy as sa  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchdb  # noqa: E402

from precache.common import rpc  # noqa: E402
from precache import conf as precache_conf  # noqa: E402
from precache.conf import defaults as conf_defaults  # noqa: E402
from precache.db import api as db_api  # noqa: E402
from precache.db import sql  # noqa: E402
from precache.objects import states  # noqa: E402
from precache.service import factory  # noqa: E402
from precache.service import notifications  # noqa: E402

GOAL = 1.0
RAISED = 10 ** 7
FAILED_CODE = 'bench-failed'
DOWN_CODE = 'bench-down'
HI = db_api.HOST_IMAGES


class CountingAgentAPI(object):
    """Stands for AgentAPI: counts the casts instead of sending them."""

    def __init__(self):
        self.casts = collections.Counter()

    def cache(self, context, image_id, meta, host=None):
        self.casts['fanout' if host is None else 'targeted'] += 1


class Role(object):
    """A fixed leadership: what an elected or a following instance has."""

    def __init__(self, name, leading):
        self.name = name
        self.leading = leading

    def is_leader(self):
        return self.leading

    def describe(self):
        return {'instance': self.name, 'leader': None, 'leader_since': None}


def build_instance(conf, url, name, leading):
    """One service instance's parts over its own engine on ``url``."""
    agent_api = CountingAgentAPI()
    parts = factory.build(
        conf, db_api.StateDB(url), agent_api=agent_api,
        notifier=notifications.RoundNotifier(name), with_pipeline=False,
        signer=benchdb.signer(), leadership=Role(name, leading))
    return parts, agent_api


class Follower(object):
    """The second instance: a convergence pass and ``desired`` answers."""

    def __init__(self, conf, url, context):
        self.parts, self.agent_api = build_instance(conf, url, 'follower',
                                                    False)
        self.context = context
        self.answers = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = None

    def start(self, hosts, now):
        self._stop.clear()
        self._thread = threading.Thread(target=self._work,
                                        args=(hosts, now))
        self._thread.start()

    def _work(self, hosts, now):
        answered = 0
        try:
            result = self.parts.reconciler.reconcile(self.context, now=now)
            if result['casts'] or sum(self.agent_api.casts.values()):
                self.errors.append('the follower cast: %s' % result)
            while not self._stop.is_set():
                self.parts.state.desired(
                    self.context, benchdb.host_name(answered % hosts), [])
                answered += 1
        except Exception as exc:
            self.errors.append('the follower failed: %r' % exc)
        self.answers.append(answered)

    def stop(self):
        self._stop.set()
        self._thread.join()
        if self.errors:
            raise SystemExit(self.errors[0])


class Bench(object):

    def __init__(self, args, url):
        self.args = args
        self.conf = precache_conf.CONF
        parts, self.agent_api = build_instance(self.conf, url, 'bench', True)
        self.db = parts.db
        self.reconciler = parts.reconciler
        self.now = db_api.utcnow().replace(microsecond=0)
        self.context = rpc.get_context()
        self.rng = random.Random(4)
        self.follower = (Follower(self.conf, url, self.context)
                         if args.instances > 1 else None)

    # Setup ----------------------------------------------------------------

    def fill(self):
        self.records, seconds = benchdb.fill(
            self.db, self.args.hosts, self.args.images, self.now)
        with self.db.engine.connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(HI)
                                ).scalar()
        print('%s: %d hosts x %d images = %d host x image rows, filled in '
              '%.1fs' % (self.db.engine.dialect.name, self.args.hosts,
                         self.args.images, rows, seconds))
        self.new = benchdb.record(self.args.images, listed_by='static')

    def caps(self, raised):
        for name in ('max_casts_per_cycle', 'max_casts_per_host'):
            if raised:
                self.conf.set_override(name, RAISED, group='service')
            else:
                self.conf.clear_override(name, group='service')

    def execute(self, statement, params=None):
        with self.db.engine.begin() as conn:
            if params:
                for chunk in sql.chunks(params, 5000):
                    conn.execute(statement, chunk)
            else:
                conn.execute(statement)

    def add_new_image(self):
        benchdb.serve(self.db, [self.new], self.now)

    def drop_new_image(self):
        self.execute(HI.delete().where(HI.c.image_id == self.new.id))
        self.execute(db_api.IMAGES.delete().where(
            db_api.IMAGES.c.id == self.new.id))

    def forget_new_image_rows(self):
        self.execute(HI.delete().where(HI.c.image_id == self.new.id))

    def clear_rounds(self):
        self.execute(db_api.ROUNDS.delete())
        self.execute(HI.update().where(HI.c.round_id.is_not(None))
                     .values(round_id=None))

    def mark(self, pairs, status, code):
        """Give ``pairs`` (host id, image id) ``status``, backoff over."""
        update = (HI.update()
                  .where(HI.c.host_id == sa.bindparam('b_host'),
                         HI.c.image_id == sa.bindparam('b_image'))
                  .values(status=status, code=code, reason='benchmark',
                          attempts=1, cast_at=self.now - _minutes(90),
                          next_attempt_at=self.now - _minutes(1)))
        self.execute(update, [dict(b_host=h, b_image=i) for h, i in pairs])

    def rearm(self, code, status):
        """Undo a cycle's casts of the rows marked with ``code``."""
        self.execute(HI.update().where(HI.c.code == code).values(
            status=status, attempts=1, round_id=None,
            cast_at=self.now - _minutes(90),
            next_attempt_at=self.now - _minutes(1)))

    def unmark(self, code):
        self.execute(HI.update().where(HI.c.code == code).values(
            status=states.CACHED, code=None, reason=None, attempts=0,
            next_attempt_at=None, cast_at=self.now, reported_at=self.now))

    def set_heartbeat(self, host_ids, when):
        self.execute(db_api.HOSTS.update()
                     .where(db_api.HOSTS.c.id == sa.bindparam('b_id'))
                     .values(last_heartbeat=when),
                     [dict(b_id=h) for h in host_ids])

    def sample_pairs(self, fraction):
        hosts, images = self.args.hosts, self.args.images
        picks = self.rng.sample(range(hosts * images),
                                int(hosts * images * fraction))
        return [(p // images + 1, self.records[p % images].id)
                for p in picks]

    # Measurement ----------------------------------------------------------

    def cycles(self, between=None, hosts=None):
        """Run ``--cycles`` passes; return (casts, deferred, seconds)."""
        seconds, casts, deferred = [], set(), set()
        for _ in range(self.args.cycles):
            if between is not None:
                between()
            self.agent_api.casts.clear()
            if self.follower is not None:
                self.follower.start(self.args.hosts, self.now)
            started = time.perf_counter()
            result = self.reconciler.reconcile(self.context, hosts=hosts,
                                               now=self.now)
            seconds.append(time.perf_counter() - started)
            if self.follower is not None:
                self.follower.stop()
            if self.agent_api.casts['targeted'] != result['casts']:
                raise SystemExit('reconcile() said %d casts, sent %d'
                                 % (result['casts'],
                                    self.agent_api.casts['targeted']))
            casts.add(result['casts'])
            deferred.add(result['deferred'])
        if len(casts) != 1 or len(deferred) != 1:
            raise SystemExit('cycles on the same state differ: casts %s, '
                             'deferred %s' % (sorted(casts), sorted(deferred)))
        return casts.pop(), deferred.pop(), seconds

    def run(self):
        self.fill()
        rows = []
        hosts = self.args.hosts
        default_cycle = self.conf.service.max_casts_per_cycle
        default_host = self.conf.service.max_casts_per_host

        def reset_new():
            self.forget_new_image_rows()
            self.clear_rounds()

        def measure(name, expected, **kwargs):
            casts, deferred, seconds = self.cycles(**kwargs)
            answers = None
            if self.follower is not None:
                answers = statistics.median(
                    self.follower.answers[-self.args.cycles:])
            rows.append((name, casts, expected, deferred, seconds, answers))
            print('  %-32s %6d casts %.3fs' % (name, casts,
                                               statistics.median(seconds)),
                  flush=True)

        self.caps(raised=False)
        measure('steady (all cached)', 0)

        self.add_new_image()
        self.caps(raised=True)
        measure('new image, caps raised', hosts, between=reset_new)
        self.caps(raised=False)
        measure('new image, default caps',
                min(hosts, default_cycle), between=reset_new)
        self.drop_new_image()

        failed = self.sample_pairs(0.05)
        self.mark(failed, states.FAILED, FAILED_CODE)
        per_host = collections.Counter(h for h, _ in failed)

        def reset_failed():
            self.rearm(FAILED_CODE, states.FAILED)
            self.clear_rounds()

        measure('5% failed past backoff, default caps',
                min(default_cycle, sum(min(n, default_host)
                                       for n in per_host.values())),
                between=reset_failed)
        self.caps(raised=True)
        measure('5% failed past backoff, caps raised', len(failed),
                between=reset_failed)
        self.unmark(FAILED_CODE)
        self.clear_rounds()

        down = self.rng.sample(range(1, hosts + 1), hosts * 2 // 100)
        self.set_heartbeat(down, self.now - datetime.timedelta(days=1))
        self.mark([(h, r.id) for h in down for r in self.records],
                  states.FAILED, DOWN_CODE)
        self.add_new_image()
        measure('2% hosts down, new image', hosts - len(down),
                between=reset_new)
        self.drop_new_image()
        self.unmark(DOWN_CODE)
        self.set_heartbeat(down, self.now)
        self.caps(raised=False)

        back = self.rng.randrange(1, hosts + 1)
        self.mark([(back, r.id) for r in self.records[:5]], states.MISSING,
                  FAILED_CODE)

        def reset_back():
            self.rearm(FAILED_CODE, states.MISSING)
            self.clear_rounds()

        measure('one host back up (lacks 5)', 5, between=reset_back,
                hosts=[benchdb.host_name(back - 1)])
        self.unmark(FAILED_CODE)
        self.clear_rounds()
        self.db.engine.dispose()
        if self.follower is not None:
            self.follower.parts.db.engine.dispose()
        return rows


def _minutes(n):
    return datetime.timedelta(minutes=n)


def report(rows, backend, args):
    print()
    print('%s, %d hosts x %d images, %d cycles per scenario, %d '
          'instance(s)' % (backend, args.hosts, args.images, args.cycles,
                           args.instances))
    print()
    follower = args.instances > 1
    print('| scenario | casts | deferred | median s/cycle | max s | '
          'goal < %g s |%s' % (GOAL, ' follower: casts, desired answered '
                               'per cycle |' if follower else ''))
    print('|---|---|---|---|---|---|%s' % ('---|' if follower else ''))
    ok = True
    for name, casts, expected, deferred, seconds, answers in rows:
        median = statistics.median(seconds)
        good = median < GOAL and casts == expected
        ok = ok and good
        note = '' if casts == expected else ' (expected %d)' % expected
        print('| %s | %d%s | %d | %.3f | %.3f | %s |%s'
              % (name, casts, note, deferred, median, max(seconds),
                 'yes' if good else '**no**',
                 ' 0, %d |' % answers if follower else ''))
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--hosts', type=int, default=10000)
    parser.add_argument('--images', type=int, default=50)
    parser.add_argument('--cycles', type=int, default=5,
                        help='cycles per scenario (the median is shown)')
    parser.add_argument('--connection',
                        help='a PostgreSQL or MySQL/MariaDB server URL; a '
                             'database is created there and dropped after '
                             '(default: a temporary sqlite file)')
    parser.add_argument('--instances', type=int, default=1, choices=(1, 2),
                        help='2: a following instance shares the database '
                             '(needs --connection)')
    args = parser.parse_args()
    if args.instances > 1 and not args.connection:
        parser.error('--instances 2 needs a shared server: --connection')
    conf = precache_conf.CONF
    conf_defaults.set_defaults(conf)
    conf([], project='precache', default_config_files=[])
    rpc.init(conf, url='fake:/')
    try:
        with benchdb.database(args.connection) as url:
            bench = Bench(args, url)
            backend = bench.db.engine.dialect.name
            rows = bench.run()
    finally:
        rpc.cleanup()
    return 0 if report(rows, backend, args) else 1


if __name__ == '__main__':
    sys.exit(main())
