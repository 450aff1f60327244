"""Convergence: every live target host ends up with every desired image.

Fanout casts are at-most-once: an agent that is down, or restarted with a
new queue, misses them. The service therefore keeps the desired set in its
database and, each pass, sends targeted casts (``prepare(server=host)``) of
what each live target host lacks according to its reports and heartbeat
inventories. Per host x image, casts back off exponentially
(``retry_backoff`` doubled per attempt up to ``retry_backoff_max``), and a
pass sends at most ``max_casts_per_host`` casts to one host and
``max_casts_per_cycle`` in all, so a broken host or a mass repair cannot
storm the broker or the origin. A host that answers ``busy`` (its queue
is full) is asked again after ``busy_retry_delay`` seconds by a pass of
its own, and the answer does not count as a failed attempt.

A pass reads what is lacking as a stream, in the order the caps apply
it, and stops once ``max_casts_per_cycle`` is reached; a pass for some
hosts reads their rows alone. What a pass costs therefore follows the
casts it sends, not the size of the fleet.

Every meta is signed (:mod:`precache.objects.signing`) as it is cast, so
the signature is always the current key's; the database keeps metas
unsigned. Generations are ``(epoch, counter)``: the database's epoch and
a counter that grows per image (:func:`precache.objects.meta.new_generation`).

With several service instances, only the leader casts: ``leader`` (see
:class:`precache.service.coordination.Leadership`) is asked right before
each batch of casts, so an instance that lost its coordination session
stops at once; what it did not send is in the database for the new
leader's passes.
"""

import calendar
import collections
import datetime
import threading
import time

from oslo_log import log as logging

from precache.common import rpc
from precache.db import api as db_api
from precache.objects import meta as meta_mod
from precache.objects import targets as targets_mod
from precache.service.servers import tempurl

LOG = logging.getLogger(__name__)

FANOUT = 'fanout'
TARGETED = 'targeted'
#: The most host names a pass for some hosts hands the database as a
#: filter (an ``IN`` list); a pass for more filters what it reads.
HOST_FILTER_MAX = 500


def _seconds(value):
    return datetime.timedelta(seconds=value)


class Reconciler(object):
    """Computes what live hosts lack and sends the casts that repair it.

    :param conf: the service's ConfigOpts (``[service]`` options).
    :param db: the :class:`~precache.db.api.StateDB`.
    :param agent_api: an :class:`~precache.agent.rpcapi.AgentAPI`.
    :param notifier: a :class:`~precache.service.notifications.RoundNotifier`.
    :param signer: the :class:`~precache.objects.signing.Signer` every
        cast meta is signed with.
    :param leader: returns whether this instance may cast now (default:
        always).
    """

    def __init__(self, conf, db, agent_api, notifier, *, signer,
                 leader=None):
        self.conf = conf
        self.leader = leader or (lambda: True)
        self.db = db
        self.agent_api = agent_api
        self.notifier = notifier
        self.signer = signer
        self._lock = threading.Lock()
        self._later_lock = threading.Lock()
        self._later_hosts = set()
        self._later_timer = None

    @property
    def _opts(self):
        return self.conf.service

    def up_since(self, now):
        """Heartbeats at or after the returned time mean "up"."""
        return now - _seconds(self._opts.service_down_time)

    def backoff(self, attempts):
        """Seconds to wait after the ``attempts``-th cast."""
        base = self._opts.retry_backoff
        return min(base * 2 ** max(attempts - 1, 0),
                   self._opts.retry_backoff_max)

    def reconcile_later(self, host, delay):
        """Run a pass for ``host`` in ``delay`` seconds (it was busy).

        Requests coalesce: one timer serves every host asking within its
        delay, so a flood of busy answers costs one pass.
        """
        with self._later_lock:
            self._later_hosts.add(host)
            if self._later_timer is not None:
                return
            self._later_timer = threading.Timer(delay, self._reconcile_later)
            self._later_timer.daemon = True
            self._later_timer.start()

    def _reconcile_later(self):
        with self._later_lock:
            hosts, self._later_hosts = self._later_hosts, set()
            self._later_timer = None
        try:
            self.reconcile(rpc.get_context(), hosts=sorted(hosts))
        except Exception:
            LOG.exception('The convergence pass for busy host(s) %s failed',
                          ', '.join(sorted(hosts)))

    def live_targets(self, row, live_hosts):
        """``[(host_id, name)]`` of the live hosts an image row targets."""
        matcher = targets_mod.TargetMatcher(row['targets'])
        return [(host_id, name) for host_id, name, labels in live_hosts
                if matcher.matches(name, labels)]

    # Fanout ---------------------------------------------------------------

    def distribute(self, context, image, sources, lister_targets):
        """Decide the meta of a served image; fan it out when it changed.

        The targets are the union of the listers' and of an on-demand
        request's; the pin is the request's. An image whose meta asks for
        the same thing as the last one sent (generation aside) is not cast
        again: convergence repairs the hosts that lack it.

        :param image: the :class:`~precache.objects.image.ImageRecord`.
        :param sources: the ImageServer's sources.
        :param lister_targets: the listers' targets (None: every host).
        :returns: ``(meta, cast)``: the image's meta and whether this call
            fanned it out.
        """
        row = self.db.get_image(image.id)
        if not self._may_cast('image %s' % image.id):
            return row['meta'], False
        # The database gives back a request for every host (None) as {}.
        targets = targets_mod.union(
            lister_targets if row['listed'] else targets_mod.NO_ONE,
            (row['request_targets'] or None) if row['requested']
            else targets_mod.NO_ONE)
        pin_until = (calendar.timegm(row['pinned_until'].timetuple())
                     if row['pinned_until'] else None)
        previous = row['meta']
        meta = meta_mod.build(
            image, sources, targets, pin_until,
            generation=meta_mod.new_generation(row['generation']),
            epoch=self.db.epoch())
        if previous and _same_decision(previous, meta):
            if previous['sources'] == meta['sources']:
                return previous, False
            # Renewed TempURLs: stored for later casts, not fanned out.
            meta['generation'] = previous['generation']
            self.db.record_served(image.id, meta)
            return meta, False
        self.db.record_served(image.id, meta)
        row.update(meta=meta, generation=meta['generation'],
                   targets=meta['targets'])
        self.fan_out(context, row)
        return meta, True

    def fan_out(self, context, row, now=None):
        """Fan an image's meta out to every agent and open its round.

        Live target hosts are recorded as pending; hosts that are down
        will get a targeted cast when they are back.

        :param row: the image's database row (with ``meta``).
        """
        now = now or db_api.utcnow()
        with self._lock:
            if not self._may_cast('the fanout of image %s' % row['id']):
                return
            targets = self.live_targets(
                row, self.db.live_hosts(self.up_since(now)))
            self._open_round(context, row, FANOUT, targets, now)
            self.agent_api.cache(context, row['id'],
                                 self.signer.sign(row['meta']))
        LOG.info('Image %s fanned out (%d live target host(s))',
                 row['id'], len(targets))

    # Repair ---------------------------------------------------------------

    def reconcile(self, context, hosts=None, now=None):
        """Send targeted casts of what live target hosts lack.

        :param hosts: only consider these host names (a host that came
            back up, busy hosts asking again); every live host by default.
            The database reads only their rows (up to
            ``HOST_FILTER_MAX`` names; more are filtered as they are read).
        :returns: ``{'casts': n, 'deferred': n, 'stopped_at_caps': bool,
            'seconds': s}``; ``deferred`` is a lower bound when
            ``stopped_at_caps`` (see :meth:`_plan`).
        """
        started = time.monotonic()
        now = now or db_api.utcnow()
        with self._lock:
            if not self._may_cast('a convergence pass'):
                return {'casts': 0, 'deferred': 0, 'stopped_at_caps': False,
                        'seconds': 0.0}
            self._end_timed_out_rounds(context, now)
            images = {row['id']: row
                      for row in self.db.desired_images(now)}
            host_ids = only = None
            if hosts is not None:
                host_ids = self.db.host_ids(hosts)
                if len(host_ids) > HOST_FILTER_MAX:
                    host_ids, only = None, set(host_ids)
            with self.db.lacking_rows(
                    images, self.up_since(now), now,
                    now - _seconds(self._opts.report_timeout),
                    host_ids=host_ids) as lacking:
                if only is not None:
                    lacking = (r for r in lacking if r.host_id in only)
                plan, deferred, stopped = self._plan(images, lacking)
            casts = 0
            for image_id, targets in plan.items():
                if not self._may_cast('the casts of image %s' % image_id):
                    break
                self._open_round(context, images[image_id], TARGETED,
                                 targets, now)
                meta = self.signer.sign(images[image_id]['meta'])
                for _, name, _ in targets:
                    self.agent_api.cache(context, image_id, meta,
                                         host=name)
                casts += len(targets)
        seconds = time.monotonic() - started
        if casts or deferred:
            LOG.info('Convergence: %d targeted cast(s), %s%d deferred to '
                     'the next pass, in %.3fs', casts,
                     'at least ' if stopped else '', deferred, seconds)
        return {'casts': casts, 'deferred': deferred,
                'stopped_at_caps': stopped, 'seconds': seconds}

    def _may_cast(self, what):
        """Whether this instance leads; logs what it leaves when not."""
        if self.leader():
            return True
        LOG.info('Not the leader: %s is left to the leading instance', what)
        return False

    def _plan(self, images, lacking):
        """Apply targets and caps to what is lacking, in its order.

        ``lacking`` is read only as far as the caps need: once the pass
        has its ``max_casts_per_cycle`` casts, the next lacking row (one
        more target host) ends the read, counted as deferred; the rest
        is left unread, so what a pass reads grows with what it casts,
        not with what the fleet lacks. ``deferred`` is then a lower
        bound (the rows passed over for ``max_casts_per_host`` before,
        plus that one). What is left is found again by the next pass.

        :returns: ``({image: targets}, deferred, stopped)``; ``targets``
            items are ``(host_id, name, has_row)``; ``stopped`` tells that
            the read stopped at the caps with more left.
        """
        matchers = {image_id: targets_mod.TargetMatcher(row['targets'])
                    for image_id, row in images.items()}
        per_host_cap = self._opts.max_casts_per_host
        cycle_cap = self._opts.max_casts_per_cycle
        per_host = collections.Counter()
        plan = collections.defaultdict(list)
        deferred = total = 0
        for row in lacking:
            if not matchers[row.image_id].matches(row.name, row.labels):
                continue
            if total >= cycle_cap:
                return plan, deferred + 1, True
            if per_host[row.host_id] >= per_host_cap:
                deferred += 1
                continue
            per_host[row.host_id] += 1
            total += 1
            plan[row.image_id].append((row.host_id, row.name, row.has_row))
        return plan, deferred, False

    # Rounds ---------------------------------------------------------------

    def _open_round(self, context, image, kind, targets, now):
        """Record the casts of one round and emit its start notification.

        :param targets: ``[(host_id, name)]`` or ``[(host_id, name,
            has_row)]``.
        """
        if not targets:
            return None
        host_ids = [t[0] for t in targets]
        attempts = self.db.attempts(image['id'], host_ids)
        # A backoff deadline per attempt count (a handful), not per host.
        counts = {host_id: attempts.get(host_id, 0) + 1
                  for host_id in host_ids}
        deadlines = {count: now + _seconds(self.backoff(count))
                     for count in set(counts.values())}
        casts = [(host_id, host_id in attempts, deadlines[counts[host_id]])
                 for host_id in host_ids]
        round_id = self.db.open_round(image['id'], image['generation'],
                                      kind, casts, now)
        self.notifier.start(context, round_id, image['id'],
                            image['generation'], kind,
                            [t[1] for t in targets])
        return round_id

    def _end_timed_out_rounds(self, context, now):
        cutoff = now - _seconds(self._opts.round_timeout)
        for row in self.db.end_rounds(cutoff, now):
            LOG.warning('Round %d of image %s timed out: no answer from %s',
                        row['id'], row['image_id'],
                        ', '.join(row['unanswered']) or 'nobody')
            self.notifier.end(context, row, row['unanswered'])


def _same_decision(old, new):
    """Whether two metas ask for the same thing.

    The generation and signature aside, and the query strings of the
    ``swift`` sources' URLs: their TempURL signatures and expiries, which
    the server renews (see :mod:`precache.service.servers.tempurl`).
    """
    keys = set(old) | set(new)
    keys.difference_update(('generation', 'signature', 'sources'))
    return (all(old.get(k) == new.get(k) for k in keys) and
            _unsigned(old.get('sources')) == _unsigned(new.get('sources')))


def _unsigned(sources):
    """``sources`` without the query strings of the ``swift`` URLs."""
    return [dict(s, url=tempurl.without_signature(s['url']))
            if s.get('method') == 'swift' and s.get('url') else s
            for s in sources or ()]
