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

``--hosts`` takes several sizes (``1000,10000``, the default): each gets a
database of its own, all filled first; then each scenario is set up on
every database and its cycles alternate between the sizes (so that a
change in the machine's load hits every size alike), and a last table
puts each scenario's median at the largest size next to its median at
the smallest, with their ratio (the time ratio) and the ratio of the
casts it sent. A pass should cost what it does, not what the fleet is:
the goal is a steady-state time ratio of at most 1.5 (nothing to cast at
either size), and a time ratio no larger than the cast ratio for the
passes that cast.

Usage::

    python tools/bench/reconcile_benchmark.py [--hosts 1000,10000]
        [--images 50] [--cycles 5]
        [--connection postgresql+psycopg2://postgres@127.0.0.1/ |
         --private-postgresql]

``--private-postgresql`` runs a PostgreSQL cluster of its own (initdb on a
free port of 127.0.0.1, removed afterwards: the functional tests'
``PostgreSQLClusterFixture``), so no server needs to be running.

``--follower-rate R`` (a server database only) times the passes at the
largest ``--hosts`` size with a second service instance on the same
database: a follower in a process of its own, answering on a real
RabbitMQ (``--transport-url``, or a private node removed afterwards)
what followers answer (heartbeats, reports, ``desired``, the CLI's
``get_status``) sent by a load process at R messages per second (see
:mod:`follower`). Each scenario's cycles alternate between the follower
idle and busy; the table puts the medians side by side with their
ratio and the rate the follower handled, and the run fails if the
follower sent a single ``cache`` cast::

    python tools/bench/reconcile_benchmark.py --private-postgresql \
        --hosts 10000 --cycles 5 --follower-rate 40
"""

import argparse
import collections
import contextlib
import datetime
import os
import random
import statistics
import sys
import time

# Selects oslo.service's threading backend before anything imports
# oslo_service.service (oslo.messaging does).
from precache import cmd  # noqa: F401

import sqlalchemy as sa  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchdb  # noqa: E402
import follower as follower_mod  # noqa: E402

from precache.common import process as process_group  # noqa: E402
from precache.common import rpc  # noqa: E402
from precache import conf as precache_conf  # noqa: E402
from precache.conf import defaults as conf_defaults  # noqa: E402
from precache.db import api as db_api  # noqa: E402
from precache.db import sql  # noqa: E402
from precache.objects import states  # noqa: E402
from precache.service import factory  # noqa: E402
from precache.service import notifications  # noqa: E402

GOAL = 1.0
#: Goal of the steady-state time ratio, largest / smallest fleet.
STEADY_RATIO_GOAL = 1.5
STEADY = 'steady (all cached)'
RAISED = 10 ** 7
#: Seconds the follower's load runs before a timed pass.
FOLLOWER_RAMP = 1.0
FAILED_CODE = 'bench-failed'
DOWN_CODE = 'bench-down'
HI = db_api.HOST_IMAGES


class CountingAgentAPI(object):
    """Stands for AgentAPI: counts the casts instead of sending them."""

    def __init__(self):
        self.casts = collections.Counter()

    def cache(self, context, image_id, meta, host=None):
        self.casts['fanout' if host is None else 'targeted'] += 1


class Bench(object):

    def __init__(self, args, url):
        self.args = args
        self.conf = precache_conf.CONF
        self.db = db_api.StateDB(url)
        self.now = db_api.utcnow().replace(microsecond=0)
        self.agent_api = CountingAgentAPI()
        self.reconciler = factory.build(
            self.conf, self.db, agent_api=self.agent_api,
            notifier=notifications.RoundNotifier('bench'),
            with_pipeline=False, signer=benchdb.signer()).reconciler
        self.context = rpc.get_context()
        self.rng = random.Random(4)
        #: Host ids no scenario changes (a follower's load speaks for
        #: them).
        self.reserved = set()

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
                for p in picks if p // images + 1 not in self.reserved]

    def sample_hosts(self, count):
        """``count`` host ids (1-based), none of them reserved."""
        return self.rng.sample([h for h in range(1, self.args.hosts + 1)
                                if h not in self.reserved], count)

    # Measurement ----------------------------------------------------------

    def cycle(self, between=None, hosts=None, before=None):
        """Run one pass; return ``(casts, deferred, seconds)``.

        :param before: called after ``between`` (the state's reset),
            right before the timed pass.
        """
        if between is not None:
            between()
        if before is not None:
            before()
        self.agent_api.casts.clear()
        started = time.perf_counter()
        result = self.reconciler.reconcile(self.context, hosts=hosts,
                                           now=self.now)
        seconds = time.perf_counter() - started
        if self.agent_api.casts['targeted'] != result['casts']:
            raise SystemExit('reconcile() said %d casts, sent %d'
                             % (result['casts'],
                                self.agent_api.casts['targeted']))
        # A pass that stopped reading at its caps knows a lower bound.
        deferred = '%d%s' % (result['deferred'],
                             '+' if result['stopped_at_caps'] else '')
        return result['casts'], deferred, seconds

    def scenarios(self):
        """Set up each scenario in turn and yield it, then undo it.

        Yields ``(name, expected casts, cycle() keyword arguments)``; the
        caller runs the cycles before asking for the next scenario.
        """
        hosts = self.args.hosts
        default_cycle = self.conf.service.max_casts_per_cycle
        default_host = self.conf.service.max_casts_per_host

        def reset_new():
            self.forget_new_image_rows()
            self.clear_rounds()

        self.caps(raised=False)
        yield _scenario(STEADY, 0)

        self.add_new_image()
        self.caps(raised=True)
        yield _scenario('new image, caps raised', hosts, between=reset_new)
        self.caps(raised=False)
        yield _scenario('new image, default caps',
                        min(hosts, default_cycle), between=reset_new)
        self.drop_new_image()

        failed = self.sample_pairs(0.05)
        self.mark(failed, states.FAILED, FAILED_CODE)
        per_host = collections.Counter(h for h, _ in failed)

        def reset_failed():
            self.rearm(FAILED_CODE, states.FAILED)
            self.clear_rounds()

        yield _scenario('5% failed past backoff, default caps',
                        min(default_cycle, sum(min(n, default_host)
                                               for n in per_host.values())),
                        between=reset_failed)
        self.caps(raised=True)
        yield _scenario('5% failed past backoff, caps raised', len(failed),
                        between=reset_failed)
        self.unmark(FAILED_CODE)
        self.clear_rounds()

        down = self.sample_hosts(hosts * 2 // 100)
        self.set_heartbeat(down, self.now - datetime.timedelta(days=1))
        self.mark([(h, r.id) for h in down for r in self.records],
                  states.FAILED, DOWN_CODE)
        self.add_new_image()
        yield _scenario('2% hosts down, new image', hosts - len(down),
                        between=reset_new)
        self.drop_new_image()
        self.unmark(DOWN_CODE)
        self.set_heartbeat(down, self.now)
        self.caps(raised=False)

        back, = self.sample_hosts(1)
        self.mark([(back, r.id) for r in self.records[:5]], states.MISSING,
                  FAILED_CODE)

        def reset_back():
            self.rearm(FAILED_CODE, states.MISSING)
            self.clear_rounds()

        yield _scenario('one host back up (lacks 5)', 5, between=reset_back,
                        hosts=[benchdb.host_name(back - 1)])
        self.unmark(FAILED_CODE)
        self.clear_rounds()
        self.db.engine.dispose()


def _scenario(name, expected, **kwargs):
    return name, expected, kwargs


def run_interleaved(benches, cycles):
    """Run every bench's scenarios in step, cycles interleaved.

    Each scenario is set up on every bench (one per fleet size, each with
    its database), then its cycles alternate between the benches, so that
    a change in the machine's load hits every size alike and the time
    ratios hold.

    :returns: per bench, ``[(name, casts, expected, deferred, seconds)]``.
    """
    steps = [bench.scenarios() for bench in benches]
    rows = [[] for _ in benches]
    while True:
        try:
            current = [next(step) for step in steps]
        except StopIteration:
            return rows
        results = [[] for _ in benches]
        for _ in range(cycles):
            for index, bench in enumerate(benches):
                results[index].append(bench.cycle(**current[index][2]))
        for bench, (name, expected, _k), out, table in zip(
                benches, current, results, rows):
            outcomes, deferred = _outcome(out)
            if len(outcomes) != 1:
                raise SystemExit('cycles on the same state differ: %s'
                                 % sorted(outcomes))
            (casts, _d), = outcomes
            seconds = [s for _c, _d, s in out]
            table.append((name, casts, expected, deferred, seconds))
            print('  %6d hosts  %-38s %6d casts %.3fs' % (
                bench.args.hosts, name, casts, statistics.median(seconds)),
                flush=True)


def _outcome(cycles):
    """What cycles on the same state must agree on, and their deferred.

    :param cycles: ``[(casts, deferred, seconds)]``.
    :returns: the set of ``(casts, deferred)`` of the cycles and the
        deferred figure to show. A pass that stopped reading at its caps
        (``N+``) knows a lower bound, which depends on the order the
        database gave its rows in (the rows to retry come unordered):
        such cycles must agree on their casts and on having stopped, and
        the smallest bound is shown.
    """
    outcomes = {(c, '+' if d.endswith('+') else d) for c, d, _s in cycles}
    bounds = [int(d[:-1]) for _c, d, _s in cycles if d.endswith('+')]
    return outcomes, ('%d+' % min(bounds) if bounds else cycles[0][1])


def _minutes(n):
    return datetime.timedelta(minutes=n)


def report(rows, backend, args, hosts):
    print()
    print('%s, %d hosts x %d images, %d cycles per scenario'
          % (backend, hosts, args.images, args.cycles))
    print()
    print('| scenario | casts | deferred | median s/cycle | max s | '
          'goal < %g s |' % GOAL)
    print('|---|---|---|---|---|---|')
    ok = True
    for name, casts, expected, deferred, seconds in rows:
        median = statistics.median(seconds)
        good = median < GOAL and casts == expected
        ok = ok and good
        note = '' if casts == expected else ' (expected %d)' % expected
        print('| %s | %d%s | %s | %.3f | %.3f | %s |'
              % (name, casts, note, deferred, median, max(seconds),
                 'yes' if good else '**no**'))
    return ok


def scaling_rows(small, large):
    """Compare the scenarios' medians at two fleet sizes.

    :param small: the rows of :meth:`Bench.run` at the smaller size.
    :param large: the rows at the larger size.
    :returns: ``(scenario, casts small, casts large, median small,
        median large, time ratio, cast ratio or None)`` per scenario; the
        cast ratio is None when the small pass cast nothing.
    """
    result = []
    for row_s, row_l in zip(small, large):
        name, casts_s, _e, _d, sec_s = row_s
        name_l, casts_l, _e, _d, sec_l = row_l
        assert name == name_l, (name, name_l)
        median_s, median_l = statistics.median(sec_s), statistics.median(
            sec_l)
        result.append((name, casts_s, casts_l, median_s, median_l,
                       median_l / median_s,
                       casts_l / casts_s if casts_s else None))
    return result


def report_scaling(rows, backend, small_hosts, large_hosts):
    """Print the scaling table; return whether its goals are met."""
    print()
    print('%s: time and casts at %d hosts over %d hosts (same run)'
          % (backend, large_hosts, small_hosts))
    print()
    print('| scenario | casts %d / %d | median s %d / %d | time ratio | '
          'cast ratio | goal |' % (small_hosts, large_hosts, small_hosts,
                                   large_hosts))
    print('|---|---|---|---|---|---|')
    ok = True
    for name, casts_s, casts_l, med_s, med_l, ratio, cast_ratio in rows:
        if name == STEADY:
            good, goal = ratio <= STEADY_RATIO_GOAL, '<= %g' % (
                STEADY_RATIO_GOAL)
        elif cast_ratio is not None:
            good, goal = ratio <= cast_ratio, '<= cast ratio'
        else:
            good, goal = True, '-'
        ok = ok and good
        print('| %s | %d / %d | %.3f / %.3f | %.2f | %s | %s%s |' % (
            name, casts_s, casts_l, med_s, med_l, ratio,
            '-' if cast_ratio is None else '%.2f' % cast_ratio, goal,
            '' if goal == '-' else (' yes' if good else ' **no**')))
    return ok


def run_with_follower(args, transport_url):
    """Time the passes without and with a busy follower, side by side.

    One fleet (the largest ``--hosts``); a :class:`follower.Follower` on
    its database. Each scenario's cycles alternate: the follower idle,
    then busy (its load switched on ``FOLLOWER_RAMP`` seconds before the
    timed pass, and kept on through it).

    :returns: ``[(name, casts, expected, seconds idle, seconds busy,
        messages/s while busy)]`` and the follower's casts.
    """
    hosts = max(args.hosts)
    with benchdb.database(args.connection) as url:
        bench = Bench(argparse.Namespace(**dict(vars(args), hosts=hosts)),
                      url)
        bench.reserved = set(follower_mod.hosts(args.follower_hosts, hosts))
        bench.fill()
        names = [benchdb.host_name(h - 1) for h in sorted(bench.reserved)]
        follower = follower_mod.Follower(
            transport_url, url, args.follower_rate, names,
            [r.id for r in bench.records])
        try:
            rows = _follower_cycles(bench, follower, args.cycles)
            casts = follower.casts.value
        finally:
            follower.close()
            bench.db.engine.dispose()
    return rows, casts


def _follower_cycles(bench, follower, cycles):
    rows = []
    for name, expected, kwargs in bench.scenarios():
        idle, busy, rates = [], [], []
        for _ in range(cycles):
            follower.set_busy(False)
            idle.append(bench.cycle(**kwargs))
            sent = []

            def ramp():
                sent.append((follower.counts()[1], time.monotonic()))
                follower.set_busy(True)
                time.sleep(FOLLOWER_RAMP)

            busy.append(bench.cycle(before=ramp, **kwargs))
            handled, started = sent[0]
            rates.append((follower.counts()[1] - handled) /
                         (time.monotonic() - started))
            follower.set_busy(False)
        outcomes, _deferred = _outcome(idle + busy)
        if len(outcomes) != 1:
            raise SystemExit('cycles on the same state differ (the '
                             "follower's load changed it?): %s"
                             % sorted(outcomes))
        (casts, _d), = outcomes
        rows.append((name, casts, expected, [x for _c, _d, x in idle],
                     [x for _c, _d, x in busy], statistics.median(rates)))
        print('  %-38s %6d casts idle %.3fs busy %.3fs' % (
            name, casts, statistics.median(rows[-1][3]),
            statistics.median(rows[-1][4])), flush=True)
    return rows


def report_follower(rows, follower_casts, backend, args):
    """Print the side-by-side table; return whether the checks hold."""
    print()
    print('%s, %d hosts x %d images, %d cycles per scenario; a follower '
          'process on the same database, its load offered at %g '
          'messages/s' % (backend, max(args.hosts), args.images,
                          args.cycles, args.follower_rate))
    print()
    print('| scenario | casts | median s, follower idle | median s, '
          'follower busy | ratio | follower messages/s handled |')
    print('|---|---|---|---|---|---|')
    ok = True
    for name, casts, expected, idle, busy, rate in rows:
        good = casts == expected
        ok = ok and good
        note = '' if good else ' (expected %d)' % expected
        print('| %s | %d%s | %.3f | %.3f | %.2f | %.1f |' % (
            name, casts, note, statistics.median(idle),
            statistics.median(busy),
            statistics.median(busy) / statistics.median(idle), rate))
    print()
    print('casts sent by the follower: %d (must be 0)' % follower_casts)
    return ok and follower_casts == 0


def _run_follower(args):
    with contextlib.ExitStack() as stack:
        transport_url = args.transport_url
        if not transport_url:
            from precache.tests.fixtures import rabbitmq
            broker = stack.enter_context(rabbitmq.RabbitMQFixture())
            transport_url = broker.transport_url
        try:
            rows, casts = run_with_follower(args, transport_url)
        finally:
            rpc.cleanup()
    backend = sa.engine.make_url(args.connection).get_backend_name()
    return 0 if report_follower(rows, casts, backend, args) else 1


def host_counts(text):
    """Parse ``--hosts``: ``10000`` or ``1000,10000``."""
    try:
        counts = sorted({int(x) for x in text.split(',') if x})
    except ValueError:
        counts = []
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(
            '%r is not a host count or a comma-separated list of them'
            % text)
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--hosts', type=host_counts, default=[1000, 10000],
                        help='fleet sizes, comma-separated (each in a '
                             'database of its own; default 1000,10000)')
    parser.add_argument('--images', type=int, default=50)
    parser.add_argument('--cycles', type=int, default=5,
                        help='cycles per scenario (the median is shown)')
    parser.add_argument('--connection',
                        help='a PostgreSQL or MySQL/MariaDB server URL; a '
                             'database is created there and dropped after '
                             '(default: a temporary sqlite file)')
    parser.add_argument('--private-postgresql', action='store_true',
                        help='run a private PostgreSQL cluster for the '
                             'run (needs the Debian package "postgresql")')
    parser.add_argument('--follower-rate', type=float, default=0,
                        help='with a follower: messages per second its '
                             'load sends while busy (0: no follower)')
    parser.add_argument('--follower-hosts', type=int, default=200,
                        help='hosts the follower\'s load speaks for')
    parser.add_argument('--transport-url',
                        help='with a follower: the broker (default: a '
                             'private RabbitMQ node)')
    args = parser.parse_args()
    if args.follower_rate and not (args.connection or
                                   args.private_postgresql):
        parser.error('--follower-rate needs a server database '
                     '(--connection or --private-postgresql): several '
                     'instances cannot share sqlite')
    if args.follower_rate:
        # Before oslo.messaging names a queue (see
        # precache.common.process).
        process_group.ensure_own_process_group()
    if args.private_postgresql:
        if args.connection:
            parser.error('--connection and --private-postgresql exclude '
                         'each other')
        from precache.tests.fixtures import postgresql
        with postgresql.PostgreSQLClusterFixture() as cluster:
            args.connection = cluster.url
            return run(args)
    return run(args)


def run(args):
    """Run the scenarios at every ``--hosts`` size; report them."""
    conf = precache_conf.CONF
    conf_defaults.set_defaults(conf)
    conf([], project='precache', default_config_files=[])
    rpc.init(conf, url='fake:/')
    if args.follower_rate:
        return _run_follower(args)
    sizes = args.hosts
    try:
        with contextlib.ExitStack() as stack:
            benches = []
            for hosts in sizes:
                url = stack.enter_context(benchdb.database(args.connection))
                bench = Bench(argparse.Namespace(**dict(vars(args),
                                                        hosts=hosts)), url)
                bench.fill()
                benches.append(bench)
            backend = benches[0].db.engine.dialect.name
            runs = run_interleaved(benches, args.cycles)
    finally:
        rpc.cleanup()
    ok = True
    for hosts, rows in zip(sizes, runs):
        ok = report(rows, backend, args, hosts) and ok
    if len(sizes) > 1:
        ok = report_scaling(scaling_rows(runs[0], runs[-1]), backend,
                            sizes[0], sizes[-1]) and ok
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
