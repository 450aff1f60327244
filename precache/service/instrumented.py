"""Proxies that count what the service's parts do, for Prometheus.

Each wraps one collaborator, records into :mod:`precache.service.metrics`
and hands the call on unchanged; every other attribute is the wrapped
object's. :func:`precache.service.factory.build` puts them in place when
``[metrics] enabled`` is set.
"""

import time

from precache.objects import states
from precache.service import convergence
from precache.service import metrics


class _Proxy(object):

    def __init__(self, wrapped):
        self._wrapped = wrapped

    def __getattr__(self, name):
        return getattr(self._wrapped, name)


class AgentAPI(_Proxy):
    """Counts the ``cache`` casts (fanout: no host; targeted: a host)."""

    def cache(self, context, image_id, meta, host=None):
        result = self._wrapped.cache(context, image_id, meta, host=host)
        metrics.CASTS.labels(convergence.FANOUT if host is None
                             else convergence.TARGETED).inc()
        return result


class RoundNotifier(_Proxy):
    """Counts rounds as they open; times them as they end."""

    def start(self, context, round_id, image_id, generation, kind, hosts):
        metrics.ROUNDS_STARTED.labels(kind).inc()
        return self._wrapped.start(context, round_id, image_id, generation,
                                   kind, hosts)

    def end(self, context, round_row, unanswered=()):
        if round_row.get('ended_at') and round_row.get('started_at'):
            outcome = ('complete'
                       if round_row['answered'] >= round_row['total']
                       else 'timed_out')
            metrics.ROUND_SECONDS.labels(round_row['kind'], outcome).observe(
                (round_row['ended_at'] -
                 round_row['started_at']).total_seconds())
        return self._wrapped.end(context, round_row, unanswered)


class StateKeeper(_Proxy):
    """Counts agents' reports, by status and failure code."""

    def report(self, context, host, image_id, status, detail):
        if status in states.STATUSES:
            detail = detail if isinstance(detail, dict) else {}
            code = (metrics.bounded(detail.get('code'), metrics.CODES)
                    if status == states.FAILED else '')
            metrics.REPORTS.labels(status, code).inc()
            received = detail.get('bytes')
            if (status == states.CACHED and isinstance(received, int) and
                    received > 0):
                metrics.REPORTED_BYTES.labels(metrics.bounded(
                    detail.get('source'), metrics.SOURCES)).inc(received)
        return self._wrapped.report(context, host, image_id, status, detail)


class Pipeline(_Proxy):
    """Times pipeline runs; counts the images' outcomes."""

    def run(self, context):
        started = time.monotonic()
        try:
            outcomes = self._wrapped.run(context)
        except Exception:
            metrics.RUN_FAILURES.inc()
            raise
        finally:
            metrics.RUN_SECONDS.observe(time.monotonic() - started)
        for outcome in outcomes:
            _count(outcome)
        return outcomes

    def process_request(self, context, image_id):
        outcome = self._wrapped.process_request(context, image_id)
        if outcome is not None:
            _count(outcome)
        return outcome


def _count(outcome):
    if outcome.deferred:
        metrics.PIPELINE_IMAGES.labels('deferred').inc()
    elif outcome.error:
        metrics.PIPELINE_IMAGES.labels('failed').inc()
        metrics.PIPELINE_FAILURES.labels(metrics.bounded(
            outcome.code, metrics.CODES)).inc()
    else:
        metrics.PIPELINE_IMAGES.labels(
            'cast' if outcome.distributed else 'unchanged').inc()
