"""precache-agent's Prometheus metrics, written as a node_exporter textfile.

Why a textfile and not an endpoint: the agent runs on every compute host,
where node_exporter usually runs already; writing a file opens no further
port on hypervisors (no new listener to firewall, authenticate or keep
alive) and needs no scrape configuration per host. node_exporter serves
the file with its own metrics and its ``node_textfile_mtime_seconds``
tells when the agent last wrote it (an agent that stopped writing is
visible).

The file is written every ``[metrics] textfile_interval`` seconds and
when the agent stops, atomically (a temporary name beside it, then a
rename: node_exporter ignores names that do not end in ``.prom``).

What is counted comes from the agent's own reports to the service
(:class:`ReportingServiceAPI` wraps the service API), so the file and
the service's database tell the same story; the disk figures are read
from the store when the file is written.
"""

from oslo_log import log as logging
import prometheus_client as prom
from prometheus_client import metrics_core

from precache.objects import states
from precache.service import metrics as service_metrics

LOG = logging.getLogger(__name__)

#: Seconds buckets of a download (request to landed image).
DOWNLOAD_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
#: The outcomes of a cache request.
OUTCOMES = (states.CACHED, states.EXISTING, states.FAILED)


class AgentMetrics(object):
    """The agent's metrics, in a registry of their own."""

    def __init__(self):
        self.registry = prom.CollectorRegistry(auto_describe=False)
        self.downloads = prom.Counter(
            'precache_agent_downloads', 'Cache requests answered, by '
            'outcome (cached: downloaded and landed; existing: already '
            'there; failed) and data plane (empty unless cached).',
            ['outcome', 'source'], registry=self.registry)
        self.failures = prom.Counter(
            'precache_agent_download_failures', 'Failed cache requests, '
            'by code.', ['code'], registry=self.registry)
        self.received = prom.Counter(
            'precache_agent_received_bytes', 'Bytes received for the '
            'images landed, by data plane.', ['source'],
            registry=self.registry)
        self.seconds = prom.Histogram(
            'precache_agent_download_duration_seconds', 'Seconds from a '
            'cache request to its answer, by outcome.', ['outcome'],
            buckets=DOWNLOAD_BUCKETS, registry=self.registry)

    def watch_disk(self, store):
        """Report ``store.disk_usage()`` at each collection."""
        self.registry.register(_DiskCollector(store))

    def record(self, status, detail):
        """Count one report the agent sends (``status``, ``detail``)."""
        if status not in OUTCOMES:
            return
        source = ''
        if status == states.CACHED:
            source = service_metrics.bounded(detail.get('source'),
                                             service_metrics.SOURCES)
            self.received.labels(source).inc(detail.get('bytes') or 0)
        elif status == states.FAILED:
            self.failures.labels(service_metrics.bounded(
                detail.get('code'), service_metrics.CODES)).inc()
        self.downloads.labels(status, source).inc()
        if detail.get('seconds') is not None:
            self.seconds.labels(status).observe(detail['seconds'])

    def write(self, path):
        """Write the metrics to ``path`` atomically; log a failure."""
        try:
            prom.write_to_textfile(path, self.registry)
        except Exception as exc:
            LOG.warning('Could not write the metrics file %s: %s', path,
                        exc)


class _DiskCollector(object):
    """The store's disk figures, read when the metrics are collected."""

    def __init__(self, store):
        self.store = store

    def collect(self):
        try:
            usage = self.store.disk_usage()
        except Exception as exc:
            LOG.warning('Could not read the store\'s disk usage: %s', exc)
            return
        for name, key, text in (
                ('precache_agent_cache_bytes', 'cache_bytes',
                 'Bytes allocated to the images in the image cache.'),
                ('precache_agent_disk_free_bytes', 'free',
                 'Bytes available to the agent on the cache\'s file '
                 'system.'),
                ('precache_agent_disk_total_bytes', 'total',
                 'Size of the cache\'s file system in bytes.')):
            yield metrics_core.GaugeMetricFamily(name, text, value=usage[key])


class ReportingServiceAPI(object):
    """The service API, counting each report into :class:`AgentMetrics`."""

    def __init__(self, service_api, agent_metrics):
        self._wrapped = service_api
        self.metrics = agent_metrics

    def report(self, context, host, image_id, status, detail):
        self.metrics.record(status, detail)
        return self._wrapped.report(context, host, image_id, status, detail)

    def __getattr__(self, name):
        return getattr(self._wrapped, name)
