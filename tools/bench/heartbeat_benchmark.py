"""Benchmark of the service's heartbeat handling over a real RabbitMQ.

Runs the service's real RPC endpoint in this process
(:class:`~precache.service.manager.ServiceManager` over a
:class:`~precache.service.state.StateKeeper` and a
:class:`~precache.db.api.StateDB`), served by oslo.messaging's RPC server on
the service topic (native threads, no ``executor=``). Client processes
simulate ``--agents`` agents, each casting one ``heartbeat`` per
``--period`` seconds through :class:`precache.service.rpcapi.ServiceAPI`
with a ``--images``-image inventory; the agents' send times are spread
evenly over the period. The database (sqlite by default, or a fresh
database on the ``--connection`` server) starts converged: the agents are
known hosts, up, with every image cached, as in a running cloud.

Every ``--sample-interval`` seconds it samples the service queue's ready
messages (a passive ``queue.declare`` through kombu: no management plugin
needed) and the backlog: heartbeats sent but not handled yet. The RPC
server takes messages as fast as RabbitMQ delivers them and acknowledges
each when a worker thread picks it up, so the backlog is the number that
tells whether the service keeps up; the broker's ready count stays near
zero either way.

After ``--duration`` seconds the clients stop; the service gets
``--drain-timeout`` seconds to handle what is left. It prints heartbeats
sent and handled, hosts whose heartbeat was stored (from the database),
throughput, the latency from cast to stored (p50/p99/max), the service
time of one heartbeat, and the queue and backlog over time.

The broker: ``--transport-url``, or by default a private RabbitMQ node
started (and removed afterwards) with the functional tests'
RabbitMQFixture.

Usage::

    python tools/bench/heartbeat_benchmark.py [--agents 2000]
        [--images 50] [--duration 180] [--clients 2]
        [--transport-url rabbit://guest:guest@127.0.0.1:5672/]
        [--connection postgresql+psycopg2://postgres@127.0.0.1/]
"""

import argparse
import cProfile
import io
import multiprocessing
import os
import pstats
import statistics
import sys
import threading
import time

# Selects oslo.service's threading backend before anything imports
# oslo_service.service (oslo.messaging does).
from precache import cmd  # noqa: F401

import kombu  # noqa: E402
import oslo_messaging as messaging  # noqa: E402
import sqlalchemy as sa  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchdb  # noqa: E402
import benchrpc  # noqa: E402

from precache.common import process as process_group  # noqa: E402
from precache.common import rpc  # noqa: E402
from precache import conf as precache_conf  # noqa: E402
from precache.db import api as db_api  # noqa: E402
from precache.service import factory  # noqa: E402
from precache.service import manager as service_manager  # noqa: E402
from precache.service import notifications  # noqa: E402
from precache.service import rpcapi  # noqa: E402

SERVICE_HOST = 'bench-service'


def _percentile(values, fraction):
    if not values:
        return float('nan')
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


# Clients ------------------------------------------------------------------

def client(index, args, image_ids, start, sent, late):
    """Cast the heartbeats of agents ``index``, ``index + clients``...

    :param start: ``time.monotonic()`` of the first period (the clock is
        the same in every process).
    :param sent: this client's slot of a shared counter array.
    :param late: shared array: the worst lateness of a cast, in ms.
    """
    conf = benchrpc.configure(args.transport_url, 'bench-client-%d' % index)
    api = rpcapi.ServiceAPI(conf)
    context = rpc.get_context()
    inventory = benchdb.inventory(image_ids)
    disk = {'total': 2 * 1024 ** 4, 'free': 1024 ** 4,
            'cache_bytes': len(image_ids) * 3 * 1024 ** 3}
    agents = range(index, args.agents, args.clients)
    step = args.period / args.agents
    end = start + args.duration
    period = 0
    try:
        while True:
            for agent in agents:
                due = start + period * args.period + agent * step
                if due >= end:
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    late[index] = max(late[index], int(-delay * 1000))
                status = {'version': '1.0.0', 'labels': ['az1'],
                          'disk': disk, 'inventory': inventory,
                          'bench_sent_at': time.monotonic()}
                api.heartbeat(context, benchdb.host_name(agent), status)
                sent[index] += 1
            period += 1
    finally:
        rpc.cleanup()


# Service ------------------------------------------------------------------

class TimedState(object):
    """The StateKeeper, with each heartbeat's service time measured."""

    def __init__(self, state, profile=False):
        self._state = state
        self._lock = threading.Lock()
        self._times_lock = threading.Lock()
        self.service_times = []
        self.failures = 0
        self.profiler = cProfile.Profile() if profile else None

    def __getattr__(self, name):
        return getattr(self._state, name)

    def heartbeat(self, context, host, status):
        if self.profiler is not None:
            # One at a time: cProfile sees only the calling thread.
            with self._lock:
                self.profiler.enable()
                try:
                    return self._timed(context, host, status)
                finally:
                    self.profiler.disable()
        return self._timed(context, host, status)

    def _timed(self, context, host, status):
        started = time.perf_counter()
        try:
            return self._state.heartbeat(context, host, status)
        except Exception:
            self.failures += 1
            raise
        finally:
            elapsed = time.perf_counter() - started
            with self._times_lock:
                self.service_times.append(elapsed)


class Service(object):
    """The service's endpoint on a real database and a real broker."""

    def __init__(self, args, url):
        self.args = args
        self.conf = benchrpc.configure(args.transport_url, SERVICE_HOST)
        self.db = db_api.StateDB(url)
        self.now = db_api.utcnow().replace(microsecond=0)
        records, seconds = benchdb.fill(self.db, args.agents, args.images,
                                        self.now)
        self.image_ids = [r.id for r in records]
        print('%s: %d hosts x %d images, filled in %.1fs'
              % (self.db.engine.dialect.name, args.agents, args.images,
                 seconds), flush=True)
        parts = factory.build(
            self.conf, self.db,
            notifier=notifications.RoundNotifier(SERVICE_HOST),
            with_pipeline=False, signer=benchdb.signer())
        self.state = TimedState(parts.state, profile=args.profile)
        self.manager = service_manager.ServiceManager(self.conf, self.state)
        self.manager.add_listener(self._handled)
        self._lock = threading.Lock()
        self.latencies = []
        target = messaging.Target(topic=self.conf.rpc.service_topic,
                                  server=SERVICE_HOST)
        self.server = rpc.get_server(target, [self.manager])

    def _handled(self, kind, host, payload):
        if kind != 'heartbeat' or 'bench_sent_at' not in payload:
            return
        latency = time.monotonic() - payload['bench_sent_at']
        with self._lock:
            self.latencies.append(latency)

    @property
    def handled(self):
        with self._lock:
            return len(self.latencies)

    def stored_hosts(self, since):
        with self.db.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count()).select_from(db_api.HOSTS)
                .where(db_api.HOSTS.c.last_heartbeat >= since)).scalar()

    def start(self):
        self.server.start()

    def stop(self):
        self.server.stop()
        self.server.wait()
        self.db.engine.dispose()


class QueueProbe(object):
    """Ready messages of the service's topic queue (passive declare)."""

    def __init__(self, transport_url, queue):
        url = messaging.TransportURL.parse(precache_conf.CONF,
                                           transport_url)
        host = url.hosts[0]
        self.connection = kombu.Connection(
            hostname=host.hostname, port=host.port, userid=host.username,
            password=host.password, virtual_host=url.virtual_host or '/')
        self.queue = queue

    def ready(self):
        channel = self.connection.default_channel
        return channel.queue_declare(queue=self.queue, passive=True
                                     ).message_count

    def close(self):
        self.connection.release()


# Run ----------------------------------------------------------------------

def run(args, url):
    service = Service(args, url)
    service.start()
    probe = QueueProbe(args.transport_url, service.conf.rpc.service_topic)
    spawn = multiprocessing.get_context('spawn')
    sent = spawn.Array('l', args.clients)
    late = spawn.Array('l', args.clients)
    # The clients need a few seconds to import and connect.
    start = time.monotonic() + 5
    since = db_api.utcnow()
    clients = [spawn.Process(target=client, name='bench-client-%d' % i,
                             args=(i, args, service.image_ids, start, sent,
                                   late))
               for i in range(args.clients)]
    for process in clients:
        process.start()
    samples = []

    def sample():
        total = sum(sent)
        backlog = total - service.handled
        samples.append((time.monotonic() - start, total, service.handled,
                        probe.ready(), backlog))

    try:
        time.sleep(max(0, start - time.monotonic()))
        while time.monotonic() < start + args.duration:
            time.sleep(args.sample_interval)
            sample()
        for process in clients:
            process.join(30)
        sample()
        stopped = time.monotonic()
        deadline = stopped + args.drain_timeout
        while (service.handled < sum(sent) and
               time.monotonic() < deadline):
            time.sleep(0.1)
        drained = time.monotonic() - stopped
        sample()
    finally:
        for process in clients:
            if process.is_alive():
                process.terminate()
        probe.close()
        service.stop()
    return service, samples, sum(sent), max(late), drained, since


def report(args, service, samples, sent, late_ms, drained, since):
    latencies = service.latencies
    times = service.state.service_times
    handled = len(latencies)
    stored = service.stored_hosts(since)
    backlog = [s[4] for s in samples]
    ready = [s[3] for s in samples]
    print()
    print('%s, %d agents x %d images, one heartbeat per agent every %ds, '
          '%ds, %d client process(es)'
          % (service.db.engine.dialect.name, args.agents, args.images,
             args.period, args.duration, args.clients))
    print()
    print('| figure | value |')
    print('|---|---|')
    print('| heartbeats sent | %d (%.1f/s; offered %.1f/s; worst send '
          'lateness %d ms) |' % (sent, sent / args.duration,
                                 args.agents / args.period, late_ms))
    print('| heartbeats handled | %d (%d failed to store) |'
          % (handled, service.state.failures))
    print('| hosts whose heartbeat was stored | %d of %d |'
          % (stored, args.agents))
    print('| throughput | %.1f heartbeats/s handled |'
          % (handled / args.duration))
    print('| latency cast -> stored | p50 %.1f ms, p99 %.1f ms, max %.1f '
          'ms |' % tuple(1000 * v for v in (
              _percentile(latencies, 0.5), _percentile(latencies, 0.99),
              max(latencies or [float('nan')]))))
    print('| service time of one heartbeat | p50 %.1f ms, p99 %.1f ms, '
          'mean %.1f ms |' % tuple(1000 * v for v in (
              _percentile(times, 0.5), _percentile(times, 0.99),
              statistics.mean(times or [float('nan')]))))
    print('| backlog (sent - handled) | max %d, at the end %d, drained in '
          '%.1fs |' % (max(backlog), samples[-2][4], drained))
    print('| broker: ready messages | max %d, final %d |'
          % (max(ready), ready[-1]))
    print()
    print('Every %gs: seconds, sent, handled, ready in the queue, backlog'
          % args.sample_interval)
    print()
    print('```')
    for t, total, done, queued, waiting in samples:
        print('%6.1f %6d %6d %4d %5d' % (t, total, done, queued, waiting))
    print('```')
    if service.state.profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(service.state.profiler, stream=out)
        stats.sort_stats('cumulative').print_stats(30)
        print(out.getvalue())
    keeps_up = (handled == sent and samples[-2][4] <= max(
        10, args.agents // args.period * 2) and stored == min(
            args.agents, sent))
    print('Goal: heartbeats of %d agents per %ds without the queue '
          'growing: %s' % (args.agents, args.period,
                           'yes' if keeps_up else '**no**'))
    return keeps_up


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--agents', type=int, default=2000)
    parser.add_argument('--images', type=int, default=50)
    parser.add_argument('--period', type=float, default=60,
                        help='seconds between two heartbeats of an agent')
    parser.add_argument('--duration', type=float, default=180,
                        help='seconds the clients send')
    parser.add_argument('--clients', type=int, default=2,
                        help='client processes casting heartbeats')
    parser.add_argument('--sample-interval', type=float, default=5)
    parser.add_argument('--drain-timeout', type=float, default=60)
    parser.add_argument('--transport-url',
                        help='the broker (default: start a private '
                             'RabbitMQ node)')
    parser.add_argument('--connection',
                        help='a PostgreSQL or MySQL/MariaDB server URL; a '
                             'database is created there and dropped after '
                             '(default: a temporary sqlite file)')
    parser.add_argument('--profile', action='store_true',
                        help='profile the heartbeat handling (one at a '
                             'time) and print where the time goes')
    args = parser.parse_args()
    # Before oslo.messaging names a queue (see precache.common.process).
    process_group.ensure_own_process_group()
    broker = None
    if not args.transport_url:
        from precache.tests.fixtures import rabbitmq
        broker = rabbitmq.RabbitMQFixture()
        broker.setUp()
        args.transport_url = broker.transport_url
        print('private RabbitMQ node %s on %s'
              % (broker.node, args.transport_url), flush=True)
    try:
        with benchdb.database(args.connection) as url:
            try:
                results = run(args, url)
            finally:
                rpc.cleanup()
            ok = report(args, *results)
    finally:
        if broker is not None:
            broker.cleanUp()
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
