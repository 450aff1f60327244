"""precache-service's Prometheus metrics.

Two sources, one registry (:func:`registry`):

* :class:`StateCollector` reads the shared database at each scrape (hosts
  up and down, host x image states of every desired image, failures by
  code, open rounds): every service instance sharing the database reports
  the same figures.
* Counters and histograms of what happens in this process (casts sent,
  rounds started and their durations, agents' reports, bytes served by
  the built-in web server, pipeline runs): each instance counts its own;
  sum them over instances (``sum without (instance) (...)``).

The in-process metrics are recorded by thin proxies that
:func:`precache.service.factory.build` puts around the agent API, the
round notifier, the state keeper (as the RPC endpoint sees it) and the
pipeline, so none of those classes knows about metrics.

Label cardinality is bounded: ``image`` takes the ids of the desired
images only (the listers' and on-demand set); ``host`` one value per
compute host; ``code`` and ``source`` are mapped onto the codes and
methods precache knows (anything else is ``other``).
"""

import datetime

from oslo_log import log as logging
import prometheus_client as prom
from prometheus_client import metrics_core

from precache.common import exception
from precache.common import metrics_endpoint
from precache.db import api as db_api
from precache.objects import states

LOG = logging.getLogger(__name__)

#: The in-process metrics (module-level: one process, one set).
IN_PROCESS = prom.CollectorRegistry()

#: Seconds buckets of rounds (casts to last answer) and pipeline runs.
ROUND_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)
RUN_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)

#: The data planes a report's ``source`` may name.
SOURCES = ('http', 'bittorrent', 'swift', 'glance', 'delta')
OTHER = 'other'
#: Codes not raised as a PrecacheException.
EXTRA_CODES = ('unexpected', 'missing')

CASTS = prom.Counter(
    'precache_casts', 'cache casts sent to agents: kind="fanout" is one '
    'message every agent receives, "targeted" one message to one host.',
    ['kind'], registry=IN_PROCESS)
ROUNDS_STARTED = prom.Counter(
    'precache_rounds_started', 'Distribution rounds opened.', ['kind'],
    registry=IN_PROCESS)
ROUND_SECONDS = prom.Histogram(
    'precache_round_duration_seconds', 'Seconds from a round\'s casts to '
    'its last answer (outcome="complete") or its timeout '
    '("timed_out"), observed by the instance that ended it.',
    ['kind', 'outcome'], buckets=ROUND_BUCKETS, registry=IN_PROCESS)
REPORTS = prom.Counter(
    'precache_agent_reports', 'Reports received from agents, by status '
    'and, for failures, code.', ['status', 'code'], registry=IN_PROCESS)
REPORTED_BYTES = prom.Counter(
    'precache_agent_received_bytes', 'Bytes agents reported receiving for '
    'the images they cached, by data plane.', ['source'],
    registry=IN_PROCESS)
SERVED_BYTES = prom.Counter(
    'precache_served_bytes', 'Bytes of artifacts sent by this instance\'s '
    'built-in web server.', ['server'], registry=IN_PROCESS)
RUN_SECONDS = prom.Histogram(
    'precache_pipeline_run_duration_seconds', 'Seconds of a pipeline run '
    '(List, Fetch, Serve, Distribute and the reconcile after it).',
    buckets=RUN_BUCKETS, registry=IN_PROCESS)
RUN_FAILURES = prom.Counter(
    'precache_pipeline_run_failures', 'Pipeline runs that raised (their '
    'images were not all tried).', registry=IN_PROCESS)
PIPELINE_IMAGES = prom.Counter(
    'precache_pipeline_images', 'Images handled by pipeline runs and '
    'on-demand requests, by outcome: cast (fanned out), unchanged, failed '
    '(fetch or serve) or deferred (waiting for its retry backoff).',
    ['outcome'], registry=IN_PROCESS)
PIPELINE_FAILURES = prom.Counter(
    'precache_pipeline_image_failures', 'Fetch or serve failures of '
    'images, by code.', ['code'], registry=IN_PROCESS)


def known_codes():
    """Every failure code precache raises (and the extra ones)."""
    codes = set(EXTRA_CODES)
    pending = [exception.PrecacheException]
    while pending:
        cls = pending.pop()
        codes.add(cls.code)
        pending.extend(cls.__subclasses__())
    return frozenset(codes)


#: The codes a ``code`` label takes (others are ``other``).
CODES = known_codes()


def bounded(value, allowed):
    """``value`` if it is one of ``allowed``, else ``other``."""
    return value if value in allowed else OTHER


def registry(keeper):
    """Return a registry with the in-process and database metrics.

    :param keeper: the :class:`~precache.service.state.StateKeeper` the
        database figures are read through.
    """
    result = prom.CollectorRegistry(auto_describe=False)
    result.register(IN_PROCESS)
    result.register(StateCollector(keeper))
    return result


def endpoint_from_conf(conf, keeper):
    """Bind the ``[metrics]`` endpoint; None unless ``enabled``.

    Bound at once, so that an address in use stops the service at
    start-up; :meth:`~precache.common.metrics_endpoint.MetricsEndpoint.
    start` serves.

    :raises ConfigurationError: the address cannot be bound.
    """
    opts = conf.metrics
    if not opts.enabled:
        return None
    try:
        return metrics_endpoint.MetricsEndpoint(
            (opts.listen_address, opts.port), registry(keeper))
    except OSError as exc:
        raise exception.ConfigurationError(
            reason='[metrics] listen_address %s, port %d: cannot listen '
                   '(%s); choose a free port or set [metrics] enabled = '
                   'false' % (opts.listen_address, opts.port,
                              exc.strerror or exc))


class StateCollector(object):
    """Reads the database at scrape time (what ``precache status`` shows).

    A database that cannot be read gives ``precache_database_up 0`` and no
    other figure of this collector.
    """

    def __init__(self, keeper):
        self.keeper = keeper

    def collect(self):
        up = metrics_core.GaugeMetricFamily(
            'precache_database_up', 'Whether this instance could read the '
            'state database at this scrape.')
        try:
            families = list(self._families())
        except Exception:
            LOG.exception('Could not read the state database for metrics')
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self):
        keeper = self.keeper
        status = keeper.get_status(None)
        up_since = keeper.reconciler.up_since(db_api.utcnow())
        gauge = metrics_core.GaugeMetricFamily

        totals = gauge('precache_hosts', 'Hosts by state (up: heartbeat '
                       'within [service] service_down_time).',
                       labels=['state'])
        for state in ('up', 'down'):
            totals.add_metric([state], status['hosts'][state])
        yield totals
        host_up = gauge('precache_host_up', 'Whether the host\'s agent '
                        'heartbeats (1) or not (0).', labels=['host'])
        heartbeat = gauge('precache_host_last_heartbeat_timestamp_seconds',
                          'Unix time of the host\'s last heartbeat.',
                          labels=['host'])
        for host in keeper.db.list_hosts():
            last = host['last_heartbeat']
            host_up.add_metric([host['name']],
                               1 if last and last >= up_since else 0)
            if last:
                heartbeat.add_metric([host['name']], _unix(last))
        yield host_up
        yield heartbeat

        desired = [image for image in status['images'] if image['desired']]
        per_state = gauge('precache_image_hosts', 'Live target hosts of a '
                          'desired image by state (waiting: not asked '
                          'yet), as "precache status" counts them.',
                          labels=['image', 'state'])
        targets = gauge('precache_image_live_targets', 'Live hosts a '
                        'desired image targets.', labels=['image'])
        info = gauge('precache_image_info', 'A desired image\'s name and '
                     'disk format (always 1).',
                     labels=['image', 'name', 'disk_format'])
        failures = gauge('precache_image_service_failures', 'Fetch or '
                         'serve failures in a row of a desired image '
                         '(0 once it works).', labels=['image'])
        for image in desired:
            image_id = image['image_id']
            counts = image['counts']
            for state in states.STATUSES + ('waiting',):
                per_state.add_metric([image_id, state],
                                     counts.get(state, 0))
            targets.add_metric([image_id], image['live_targets'])
            info.add_metric([image_id, image['name'] or '',
                             image['disk_format'] or ''], 1)
            failures.add_metric([image_id], image['failures'])
        yield from (per_state, targets, info, failures)

        codes = gauge('precache_host_image_failures', 'Failed host x image '
                      'rows of live hosts, by code.', labels=['code'])
        for code, count in sorted(keeper.db.failure_codes(up_since).items(),
                                  key=lambda item: str(item[0])):
            codes.add_metric([code or OTHER], count)
        yield codes
        rounds = gauge('precache_rounds_open', 'Distribution rounds '
                       'waiting for answers.', labels=['kind'])
        for kind, count in sorted(keeper.db.open_rounds().items()):
            rounds.add_metric([kind], count)
        yield rounds


def _unix(value):
    """A naive UTC datetime as Unix seconds."""
    return value.replace(tzinfo=datetime.timezone.utc).timestamp()
