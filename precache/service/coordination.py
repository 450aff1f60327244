"""Which precache-service instance leads: a tooz lock with a lease.

::

    every lease/3 s:  renew()
        follower ── lock.acquire(blocking=False) ──► leader (lease starts)
        leader   ── coordinator.heartbeat(), lock.heartbeat() ──► lease renewed
                 └─ any failure, lock lost ──► follower at once (steps down)
    before each cast batch:  is_leader()  (leader *and* lease not run out)

Several instances share the database and the bus; only the one holding the
lock runs List -> Fetch -> Serve -> Distribute and the convergence passes.
The lease is measured from the moment a renewal was *sent*, so this
instance stops casting no later than the backend lets the lock expire,
even when its renewals hang. Without ``[coordination] backend_url`` the
instance is alone and always leads.

The instances also join a tooz group whose capabilities say who leads and
since when, for ``precache status``; a backend without groups (the SQL
drivers) only tells each instance whether it leads itself.
"""

import threading
import time

from oslo_log import log as logging
from oslo_utils import timeutils
import tooz
from tooz import coordination as tooz_coordination

LOG = logging.getLogger(__name__)


class Leadership(object):
    """This instance's part in the election of the leader.

    :param conf: the service's ConfigOpts (``[coordination]``).
    :param member_id: this instance's name (``[DEFAULT] host``), unique
        among the instances.
    :param get_coordinator: makes the tooz coordinator (tests pass a fake).
    :param clock: monotonic seconds.
    """

    def __init__(self, conf, member_id,
                 get_coordinator=tooz_coordination.get_coordinator,
                 clock=time.monotonic):
        self.conf = conf
        self.member_id = member_id
        self._get_coordinator = get_coordinator
        self._clock = clock
        self._coordinator = None
        self._lock = None
        self._leader = not self.enabled
        self._since = timeutils.utcnow_ts() if self._leader else None
        self._valid_until = float('inf') if self._leader else 0.0
        self._mutex = threading.Lock()

    @property
    def _opts(self):
        return self.conf.coordination

    @property
    def enabled(self):
        """Whether instances elect a leader (a backend is configured)."""
        return bool(self._opts.backend_url)

    @property
    def renew_seconds(self):
        """Seconds between two calls of :meth:`renew`."""
        return max(self._opts.lease_seconds / 3.0, 1.0)

    def is_leader(self):
        """Whether this instance may cast now.

        False as soon as a renewal failed, or the lease ran out without a
        renewal (the renewing thread hangs).
        """
        return self._leader and self._clock() < self._valid_until

    def renew(self):
        """Take or keep the leadership; step down on any failure.

        Meant for a dynamic timer: returns the seconds until the next call.
        """
        if not self.enabled:
            return None
        with self._mutex:
            sent = self._clock()
            try:
                self._renew(sent)
            except Exception as exc:
                self._step_down('the coordination backend failed: %s'
                                % exc)
                self._disconnect()
        return self.renew_seconds

    def _renew(self, sent):
        if self._coordinator is None:
            self._connect()
        self._coordinator.heartbeat()
        if self._leader:
            if not self._lock.heartbeat():
                raise tooz.ToozError('the lock is no longer held')
        elif self._lock.acquire(blocking=False):
            self._leader = True
            self._since = timeutils.utcnow_ts()
            LOG.info('This instance (%s) is now the leader: it runs the '
                     'pipeline and the convergence passes', self.member_id)
            self._publish()
        if self._leader:
            self._valid_until = sent + self._opts.lease_seconds

    def _connect(self):
        coordinator = self._get_coordinator(
            self._opts.backend_url, self.member_id.encode(),
            lock_timeout=self._opts.lease_seconds)
        coordinator.start(start_heart=False)
        self._coordinator = coordinator
        self._lock = coordinator.get_lock(self._opts.lock_name.encode())
        self._join()

    @property
    def _group(self):
        return self._opts.lock_name.encode()

    def _join(self):
        """Join the instances' group (backends with groups only)."""
        try:
            try:
                self._coordinator.create_group(self._group).get()
            except tooz_coordination.GroupAlreadyExist:
                pass
            self._coordinator.join_group(self._group,
                                         self._capabilities()).get()
        except tooz.NotImplemented:
            LOG.debug('The coordination backend has no groups: precache '
                      'status will not name the leader from followers')
        except tooz_coordination.MemberAlreadyExist:
            self._publish()

    def _capabilities(self):
        return {'leader': self._leader, 'since': self._since}

    def _publish(self):
        try:
            self._coordinator.update_capabilities(
                self._group, self._capabilities()).get()
        except (tooz.NotImplemented, tooz_coordination.GroupNotCreated,
                tooz_coordination.MemberNotJoined):
            pass

    def _step_down(self, reason):
        if self._leader:
            LOG.error('This instance (%s) is no longer the leader, it stops '
                      'casting: %s', self.member_id, reason)
        else:
            LOG.warning('Cannot take part in the leader election: %s',
                        reason)
        self._leader = False
        self._since = None
        self._valid_until = 0.0

    def _disconnect(self):
        coordinator, self._coordinator, self._lock = (
            self._coordinator, None, None)
        if coordinator is None:
            return
        try:
            coordinator.stop()
        except Exception as exc:
            LOG.debug('Stopping the coordinator failed: %s', exc)

    def stop(self):
        """Give the leadership up (on a clean stop) and disconnect."""
        if not self.enabled:
            return
        with self._mutex:
            if self._leader and self._lock is not None:
                try:
                    self._lock.release()
                except Exception as exc:
                    LOG.debug('Releasing the leadership failed: %s', exc)
                LOG.info('This instance (%s) gave the leadership up',
                         self.member_id)
            self._leader = False
            self._valid_until = 0.0
            self._disconnect()

    def describe(self):
        """``{'instance', 'leader', 'leader_since'}`` for ``status``.

        ``leader`` is the leading instance's name, None when unknown (no
        leader now, or a backend without groups and this instance follows).
        """
        if self.is_leader():
            return {'instance': self.member_id, 'leader': self.member_id,
                    'leader_since': self._since}
        leader, since = self._leader_from_group()
        return {'instance': self.member_id, 'leader': leader,
                'leader_since': since}

    def _leader_from_group(self):
        coordinator = self._coordinator
        if coordinator is None:
            return None, None
        try:
            members = coordinator.get_members_with_capabilities(
                self._group).get()
        except Exception as exc:
            LOG.debug('Cannot read the instances\' group: %s', exc)
            return None, None
        leaders = sorted(((caps or {}).get('since') or 0, member)
                         for member, caps in members.items()
                         if (caps or {}).get('leader'))
        if not leaders:
            return None, None
        since, member = leaders[-1]
        if isinstance(member, bytes):
            member = member.decode()
        return member, since
