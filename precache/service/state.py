"""What the service knows of hosts and images, and what it does with it.

:class:`StateKeeper` stores agents' reports and heartbeats, emits the
progress of distribution rounds, answers agents' ``desired`` calls and the
``precache`` CLI, and records on-demand requests.
"""

import datetime

from oslo_log import log as logging

from precache.common import exception
from precache.db import api as db_api
from precache.objects import image as image_mod
from precache.objects import states
from precache.objects import targets as targets_mod
from precache.service import views

LOG = logging.getLogger(__name__)


def _from_unix(value):
    if value is None:
        return None
    return datetime.datetime.fromtimestamp(
        value, datetime.timezone.utc).replace(tzinfo=None)


class StateKeeper(object):
    """The service's state and the operations on it.

    :param conf: the service's ConfigOpts.
    :param db: the :class:`~precache.db.api.StateDB`.
    :param reconciler: the :class:`~precache.service.convergence.Reconciler`.
    :param notifier: the
        :class:`~precache.service.notifications.RoundNotifier`.
    :param requests: a :class:`queue.Queue` that receives the id of each
        image requested on demand, for the service to fetch, serve and
        distribute it without waiting for the next run; None when nothing
        drains requests (they are then served by the next run).
    :param signer: the :class:`~precache.objects.signing.Signer` that signs
        each meta of the ``desired`` answer; the reconciler's by default.
    :param leadership: the instance's
        :class:`~precache.service.coordination.Leadership`, whose
        ``describe()`` is the ``service`` field of :meth:`get_status`.
    """

    def __init__(self, conf, db, reconciler, notifier, requests=None,
                 signer=None, leadership=None):
        self.conf = conf
        self.leadership = leadership
        self.signer = signer or reconciler.signer
        self.db = db
        self.reconciler = reconciler
        self.notifier = notifier
        self.requests = requests

    def _now(self):
        return db_api.utcnow()

    # Agents ---------------------------------------------------------------

    def report(self, context, host, image_id, status, detail):
        if status not in states.STATUSES:
            LOG.warning('Host %s reported an unknown status %r for image %s',
                        image_mod.quote_id(host), status,
                        image_mod.quote_id(image_id))
            return
        now = self._now()
        retry_at = None
        if (status == states.FAILED and
                detail.get('code') == exception.AgentBusy.code):
            delay = self.conf.service.busy_retry_delay
            retry_at = now + datetime.timedelta(seconds=delay)
            self.reconciler.reconcile_later(host, delay)
        answer = self.db.record_report(host, image_id, status, detail, now,
                                       retry_at=retry_at)
        if answer is None:
            return
        self.notifier.progress(context, answer, host, image_id, status,
                               detail.get('reason'), detail)
        if answer.get('ended_at') is not None:
            self.notifier.end(context, answer)

    def heartbeat(self, context, host, status):
        now = self._now()
        grace = datetime.timedelta(
            seconds=self.conf.service.inventory_grace)
        came_up = self.db.record_heartbeat(
            host, status, self.reconciler.up_since(now), now - grace, now)
        if came_up:
            LOG.info('Host %s is up: sending what it lacks', host)
            self.reconciler.reconcile(context, hosts=[host], now=now)

    def desired(self, context, host, labels):
        """The signed meta of every desired image that targets ``host``."""
        now = self._now()
        return [self.signer.sign(row['meta'])
                for row in self.db.desired_images(now)
                if targets_mod.TargetMatcher(row['targets']).matches(
                    host, labels)]

    # Operators ------------------------------------------------------------

    def list_images(self, context):
        now = self._now()
        return [views.image_summary(row, self.db.is_desired(row, now))
                for row in self.db.list_images()]

    def list_hosts(self, context):
        up_since = self.reconciler.up_since(self._now())
        return [views.host_summary(row, self._is_up(row, up_since))
                for row in self.db.list_hosts()]

    @staticmethod
    def _is_up(host, up_since):
        return (host['last_heartbeat'] is not None and
                host['last_heartbeat'] >= up_since)

    def show_image(self, context, image_id):
        now = self._now()
        row = self.db.get_image(image_id)
        matcher = targets_mod.TargetMatcher(row['targets'])
        desired = self.db.is_desired(row, now)
        rows = self.db.image_hosts(image_id)
        up_since = self.reconciler.up_since(now)
        lines = [views.host_image(
            host['name'], self._is_up(host, up_since),
            desired and matcher.matches(host['name'], host['labels']),
            rows.get(host['name'])) for host in self.db.list_hosts()]
        return {'image': views.image_summary(row, desired),
                'hosts': lines, 'summary': views.summarize(lines)}

    def get_status(self, context):
        """Images x counts per status over their live target hosts."""
        now = self._now()
        up_since = self.reconciler.up_since(now)
        total = len(self.db.list_hosts())
        live = self.db.live_hosts(up_since)
        counts = self.db.status_counts(up_since)
        images = []
        for row in self.db.list_images():
            desired = self.db.is_desired(row, now)
            targets = self.reconciler.live_targets(row, live)
            per_status = counts.get(row['id'], {})
            if row['targets']:
                # Rows of hosts outside the targets are not counted.
                rows = self.db.image_hosts(row['id'])
                names = {name for _, name in targets}
                per_status = {}
                for name, host_row in rows.items():
                    if name in names:
                        per_status[host_row['status']] = (
                            per_status.get(host_row['status'], 0) + 1)
            live_targets = len(targets) if desired else 0
            per_status = dict(per_status)
            per_status['waiting'] = max(
                live_targets - sum(per_status.values()), 0)
            images.append(dict(views.image_summary(row, desired),
                               counts=per_status,
                               live_targets=live_targets))
        return {'hosts': {'total': total, 'up': len(live),
                          'down': total - len(live)},
                'images': images,
                'service': self._describe_service()}

    def _describe_service(self):
        """Which instance answers and which leads."""
        if self.leadership is None:
            return {'instance': self.conf.host, 'leader': self.conf.host,
                    'leader_since': None}
        return self.leadership.describe()

    def request_cache(self, context, image_id, hosts, labels, pin_until):
        targets = ({'hosts': list(hosts), 'labels': list(labels)}
                   if hosts or labels else None)
        self.db.request(image_id, targets, _from_unix(pin_until),
                        self._now())
        LOG.info('Image %s requested (targets %s, pinned until %s)',
                 image_id, targets or 'every host', pin_until)
        if self.requests is not None:
            self.requests.put(image_id)
        return self.list_image(image_id)

    def serve_request(self, context, image_id):
        """Serve a request another instance recorded, if this one leads.

        The other instances' casts reach every instance; a follower
        (this one included, when it sent the cast) leaves the request to
        the leader.
        """
        if self.requests is None or (self.leadership is not None and
                                     not self.leadership.is_leader()):
            LOG.debug('Image %s requested on another instance: left to '
                      'the leading instance', image_id)
            return
        LOG.info('Image %s requested on another instance: serving it',
                 image_id)
        self.requests.put(image_id)

    def release(self, context, image_id):
        self.db.release(image_id, self._now())
        LOG.info('Image %s released', image_id)
        return self.list_image(image_id)

    def list_image(self, image_id):
        row = self.db.get_image(image_id)
        return views.image_summary(row,
                                   self.db.is_desired(row, self._now()))
