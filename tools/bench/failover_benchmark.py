"""Benchmark of a leader's failover between two precache-service instances.

Real parts, all private: a RabbitMQ node, a Redis server (the tooz
coordination backend), a PostgreSQL cluster shared by the instances, and
two ``precache-service`` processes (``directory`` lister, ``file``
fetcher, ``http`` server writing into one shared document root). Each
run kills the leader with SIGKILL, drops a new image into the listed
directory at once, and measures

* **takeover**: kill -> the other instance logs that it leads;
* **failover**: kill -> the new leader's first cast (the new image's
  fanout);

then starts a fresh instance as the next follower. The table gives the
median and the worst of ``--runs`` runs in seconds and as ratios of
``[service] interval``, against the goal: failover under two intervals.

Usage::

    python tools/bench/failover_benchmark.py [--runs 10] [--interval 10]
        [--lease 5]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid

# Selects oslo.service's threading backend before anything imports
# oslo_service.service (oslo.messaging does).
from precache import cmd  # noqa: F401

import fixtures  # noqa: E402

from precache.tests import fixtures as servers  # noqa: E402
from precache.tests.fixtures import control_plane  # noqa: E402
from precache.tests.fixtures import postgresql  # noqa: E402
from precache.tests.fixtures import rabbitmq  # noqa: E402
from precache.tests.fixtures import redis  # noqa: E402

#: The goal, in intervals.
GOAL = 2.0
LEADS = 'is now the leader'
POLL = 0.05


class Harness(fixtures.Fixture):
    """The private servers and the service instances of the benchmark."""

    def __init__(self, args):
        super().__init__()
        self.args = args
        self.count = 0

    def _setUp(self):
        self.base_dir = self.useFixture(fixtures.TempDir()).path
        self.images_dir = os.path.join(self.base_dir, 'images')
        os.makedirs(self.images_dir)
        broker = self.useFixture(rabbitmq.RabbitMQFixture())
        self.messaging = self.useFixture(
            control_plane.MessagingFixture(broker.transport_url))
        self.redis = self.useFixture(redis.RedisFixture())
        self.database = self.useFixture(
            postgresql.PostgreSQLClusterFixture())
        self.instances = [self.start_instance(), self.start_instance()]

    def start_instance(self):
        """Start one more instance (a fresh name, a fresh log)."""
        self.count += 1
        return self.useFixture(control_plane.ServiceProcessFixture(
            self.messaging, self.base_dir, self.images_dir,
            name='svc-%d' % self.count, options={
                'service': {'interval': self.args.interval,
                            'reconcile_interval': self.args.interval},
                'coordination': {'backend_url': self.redis.url,
                                 'lease_seconds': self.args.lease},
                'database': {'connection': self.database.url},
                'http_server': {'listen': 'false',
                                'base_url': 'http://origin.invalid',
                                'document_root': os.path.join(
                                    self.base_dir, 'www')},
                'DEFAULT': {'debug': 'false'}}))

    def leader(self, timeout):
        """The running instance that leads (waits up to ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for instance in self.instances:
                if logged(instance, LEADS):
                    return instance
            time.sleep(POLL)
        raise SystemExit('no instance leads after %ds' % timeout)

    def add_image(self):
        image_id = str(uuid.uuid4())
        with tempfile.NamedTemporaryFile(dir=self.base_dir,
                                         delete=False) as f:
            f.write(os.urandom(64 * 1024))
        os.rename(f.name, os.path.join(self.images_dir, image_id))
        return image_id


def logged(instance, text):
    return text in servers.log_tail(instance.log_file, 1000000)


def one_run(harness, timeout):
    """Kill the leader; return (takeover s, failover s)."""
    leader = harness.leader(timeout)
    follower, = [i for i in harness.instances if i is not leader]
    leader.kill()
    killed = time.monotonic()
    image_id = harness.add_image()
    fanned_out = 'Image %s fanned out' % image_id
    takeover = None
    deadline = killed + timeout
    while time.monotonic() < deadline:
        if takeover is None and logged(follower, LEADS):
            takeover = time.monotonic() - killed
        if logged(follower, fanned_out):
            failover = time.monotonic() - killed
            harness.instances = [follower, harness.start_instance()]
            return takeover or failover, failover
        time.sleep(POLL)
    raise SystemExit('no cast by the new leader %ds after the kill:\n%s'
                     % (timeout, follower.log_tail()))


def report(args, takeovers, failovers):
    print()
    print('%d runs, [service] interval %ds, [coordination] lease_seconds '
          '%ds' % (args.runs, args.interval, args.lease))
    print()
    print('| measure | median s | max s | median / interval | '
          'max / interval | goal < %g intervals |' % GOAL)
    print('|---|---|---|---|---|---|')
    ok = True
    for name, values in (('kill -> new leader', takeovers),
                         ('kill -> first cast of the new leader',
                          failovers)):
        median, worst = statistics.median(values), max(values)
        good = worst < GOAL * args.interval
        ok = ok and good
        print('| %s | %.2f | %.2f | %.2f | %.2f | %s |'
              % (name, median, worst, median / args.interval,
                 worst / args.interval, 'yes' if good else '**no**'))
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', type=int, default=10)
    parser.add_argument('--interval', type=int, default=10,
                        help='[service] interval of the instances')
    parser.add_argument('--lease', type=int, default=5,
                        help='[coordination] lease_seconds')
    args = parser.parse_args()
    if not os.path.exists('/proc/%d' % os.getpgrp()):
        # oslo.messaging's queue manager reads /proc/<process group>.
        os.setpgrp()
    takeovers, failovers = [], []
    timeout = 4 * args.interval + 2 * args.lease
    with Harness(args) as harness:
        for run in range(1, args.runs + 1):
            takeover, failover = one_run(harness, timeout)
            takeovers.append(takeover)
            failovers.append(failover)
            print('run %2d: new leader after %.2fs, first cast after %.2fs'
                  % (run, takeover, failover), flush=True)
    return 0 if report(args, takeovers, failovers) else 1


if __name__ == '__main__':
    sys.exit(main())
