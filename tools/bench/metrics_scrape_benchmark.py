"""Benchmark of a scrape of precache-service's /metrics endpoint.

Builds a real state database (a temporary sqlite file by default; with
``--connection`` a fresh database on that PostgreSQL or MySQL/MariaDB
server, dropped afterwards) with ``--hosts`` x ``--images``, every image
cached on every host, and times side by side:

``precache status``
    :meth:`~precache.service.state.StateKeeper.get_status`, what the CLI
    asks the service for;
``/metrics scrape``
    a whole exposition of :func:`precache.service.metrics.registry` (the
    database collector, which reads the same figures plus hosts, failure
    codes and open rounds, and the in-process counters), over HTTP from
    :class:`~precache.common.metrics_endpoint.MetricsEndpoint`.

The table shows the median and worst seconds of ``--cycles`` cycles, the
ratio of the scrape to ``precache status``, the size of the exposition,
and the goal: a scrape well within Prometheus's default scrape timeout
(10 s).

Usage::

    python tools/bench/metrics_scrape_benchmark.py [--hosts 10000]
        [--images 50] [--cycles 5]
        [--connection postgresql+psycopg2://postgres@127.0.0.1/]
"""

import argparse
import os
import statistics
import sys
import time
import urllib.request

# Selects oslo.service's threading backend before anything imports
# oslo_service.service (oslo.messaging does).
from precache import cmd  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchdb  # noqa: E402

from precache.common import metrics_endpoint  # noqa: E402
from precache.common import rpc  # noqa: E402
from precache import conf as precache_conf  # noqa: E402
from precache.conf import defaults as conf_defaults  # noqa: E402
from precache.db import api as db_api  # noqa: E402
from precache.service import factory  # noqa: E402
from precache.service import metrics  # noqa: E402
from precache.service import notifications  # noqa: E402

#: Prometheus's default scrape timeout.
GOAL = 10.0


def timed(step, cycles):
    """Run ``step`` ``cycles`` times; return (seconds list, last result)."""
    seconds = []
    result = None
    for _ in range(cycles):
        started = time.monotonic()
        result = step()
        seconds.append(time.monotonic() - started)
    return seconds, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--hosts', type=int, default=10000)
    parser.add_argument('--images', type=int, default=50)
    parser.add_argument('--cycles', type=int, default=5)
    parser.add_argument('--connection',
                        help='a PostgreSQL or MySQL/MariaDB server URL '
                             '(default: a temporary sqlite file)')
    args = parser.parse_args()
    conf = precache_conf.CONF
    conf_defaults.set_defaults(conf)
    conf([], project='precache', default_config_files=[])
    rpc.init(conf, url='fake:/')
    try:
        with benchdb.database(args.connection) as url:
            db = db_api.StateDB(url)
            now = db_api.utcnow().replace(microsecond=0)
            _, filled = benchdb.fill(db, args.hosts, args.images, now)
            print('%s: %d hosts x %d images, filled in %.1fs'
                  % (db.engine.dialect.name, args.hosts, args.images,
                     filled))
            keeper = factory.build(
                conf, db, agent_api=object(),
                notifier=notifications.RoundNotifier('bench'),
                with_pipeline=False, signer=benchdb.signer()).state
            endpoint = metrics_endpoint.MetricsEndpoint(
                ('127.0.0.1', 0), metrics.registry(keeper))
            endpoint.start()
            scrape_url = 'http://127.0.0.1:%d/metrics' % endpoint.port

            def scrape():
                with urllib.request.urlopen(scrape_url, timeout=120) as r:
                    return r.read()

            try:
                status, _ = timed(lambda: keeper.get_status(None),
                                  args.cycles)
                scraped, body = timed(scrape, args.cycles)
            finally:
                endpoint.stop()
                db.engine.dispose()
    finally:
        rpc.cleanup()
    print('%-18s %10s %10s %8s' % ('', 'median s', 'max s', 'ratio'))
    base = statistics.median(status)
    for name, seconds in (('precache status', status),
                          ('/metrics scrape', scraped)):
        print('%-18s %10.3f %10.3f %7.2fx' % (
            name, statistics.median(seconds), max(seconds),
            statistics.median(seconds) / base))
    print('exposition: %d bytes, %d lines; goal: a scrape under %.0f s: %s'
          % (len(body), body.count(b'\n'), GOAL,
             'met' if max(scraped) < GOAL else 'NOT met'))
    return 0 if max(scraped) < GOAL else 1


if __name__ == '__main__':
    sys.exit(main())
