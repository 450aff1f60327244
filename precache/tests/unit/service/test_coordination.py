"""One leader among several service instances; a leader that loses its
coordination session stops casting at once."""

import tooz
from tooz import coordination as tooz_coordination

from precache.service import convergence
from precache.service import coordination
from precache.tests import base
from precache.tests.unit.service import state_base
from precache.tests.unit.service.state_base import at
from precache.tests.unit.service.state_base import T0

BACKEND = 'redis://127.0.0.1:1'


class FakeBackend(object):
    """What a tooz backend holds: one lock owner, the group's members."""

    def __init__(self):
        self.owner = None
        self.members = {}
        self.down = False

    def check(self):
        if self.down:
            raise tooz.ToozError('connection refused')


class FakeLock(object):

    def __init__(self, backend, member):
        self.backend = backend
        self.member = member

    def acquire(self, blocking=True):
        self.backend.check()
        if self.backend.owner in (None, self.member):
            self.backend.owner = self.member
            return True
        return False

    def heartbeat(self):
        self.backend.check()
        if self.backend.owner != self.member:
            raise tooz.ToozError('lock not owned')
        return True

    def release(self):
        self.backend.owner = None
        return True


class FakeResult(object):

    def __init__(self, value=None):
        self.value = value

    def get(self):
        return self.value


class FakeCoordinator(object):
    """A tooz coordinator over a :class:`FakeBackend`."""

    def __init__(self, backend, member, groups=True):
        self.backend = backend
        self.member = member
        self.groups = groups
        self.stopped = False

    def start(self, start_heart=False):
        self.backend.check()

    def stop(self):
        self.stopped = True

    def heartbeat(self):
        self.backend.check()

    def get_lock(self, name):
        return FakeLock(self.backend, self.member)

    def _need_groups(self):
        if not self.groups:
            raise tooz.NotImplemented('no groups')

    def create_group(self, group):
        self._need_groups()
        return FakeResult()

    def join_group(self, group, capabilities):
        self._need_groups()
        self.backend.members[self.member] = capabilities
        return FakeResult()

    def update_capabilities(self, group, capabilities):
        self._need_groups()
        self.backend.members[self.member] = capabilities
        return FakeResult()

    def get_members_with_capabilities(self, group):
        self._need_groups()
        self.backend.check()
        return FakeResult(dict(self.backend.members))


class Clock(object):

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class LeadershipTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.backend = FakeBackend()
        self.clock = Clock()
        self.coordinators = []
        self.flags(group='coordination', backend_url=BACKEND,
                   lease_seconds=9)

    def leadership(self, member, groups=True):
        def get_coordinator(url, member_id, lock_timeout):
            self.assertEqual((BACKEND, 9), (url, lock_timeout))
            coordinator = FakeCoordinator(self.backend, member_id, groups)
            self.coordinators.append(coordinator)
            return coordinator
        return coordination.Leadership(self.conf, member, get_coordinator,
                                       clock=self.clock)


class LeadershipTest(LeadershipTestCase):

    def test_without_a_backend_the_instance_always_leads(self):
        self.flags(group='coordination', backend_url='')
        leadership = self.leadership('svc-1')
        self.assertFalse(leadership.enabled)
        self.assertIsNone(leadership.renew())
        self.assertTrue(leadership.is_leader())
        self.assertEqual('svc-1', leadership.describe()['leader'])

    def test_one_leader_the_other_follows(self):
        first, second = self.leadership('svc-1'), self.leadership('svc-2')
        self.assertEqual(3.0, first.renew())
        second.renew()
        self.assertTrue(first.is_leader())
        self.assertFalse(second.is_leader())
        self.assertEqual({'instance': 'svc-2', 'leader': 'svc-1'},
                         {k: v for k, v in second.describe().items()
                          if k != 'leader_since'})

    def test_the_follower_takes_over_when_the_lock_is_free(self):
        first, second = self.leadership('svc-1'), self.leadership('svc-2')
        first.renew()
        second.renew()
        # The leader dies: the backend lets its lock expire.
        self.backend.owner = None
        second.renew()
        self.assertTrue(second.is_leader())

    def test_a_failed_renewal_steps_down_at_once(self):
        leadership = self.leadership('svc-1')
        leadership.renew()
        self.backend.down = True
        self.clock.now += 3
        leadership.renew()
        self.assertFalse(leadership.is_leader())
        self.assertTrue(self.coordinators[0].stopped)
        # Back: a new session, and the lock again.
        self.backend.down = False
        leadership.renew()
        self.assertTrue(leadership.is_leader())
        self.assertEqual(2, len(self.coordinators))

    def test_a_lost_lock_steps_down(self):
        leadership = self.leadership('svc-1')
        leadership.renew()
        self.backend.owner = 'svc-2'
        leadership.renew()
        self.assertFalse(leadership.is_leader())

    def test_a_lease_without_renewal_runs_out(self):
        leadership = self.leadership('svc-1')
        leadership.renew()
        self.clock.now += 8.9
        self.assertTrue(leadership.is_leader())
        # The renewing thread hangs: no cast once the lease is over.
        self.clock.now += 0.2
        self.assertFalse(leadership.is_leader())

    def test_a_clean_stop_gives_the_lock_up(self):
        leadership = self.leadership('svc-1')
        leadership.renew()
        leadership.stop()
        self.assertIsNone(self.backend.owner)
        self.assertFalse(leadership.is_leader())

    def test_a_backend_without_groups_still_elects(self):
        first = self.leadership('svc-1', groups=False)
        second = self.leadership('svc-2', groups=False)
        first.renew()
        second.renew()
        self.assertTrue(first.is_leader())
        self.assertIsNone(second.describe()['leader'])
        self.assertEqual('svc-1', first.describe()['leader'])

    def test_the_newest_leader_is_named(self):
        self.backend.members = {b'old': {'leader': True, 'since': 10},
                                b'new': {'leader': True, 'since': 20}}
        follower = self.leadership('svc-3')
        self.backend.owner = 'someone'
        follower.renew()
        self.assertEqual('new', follower.describe()['leader'])

    def test_group_already_there(self):
        leadership = self.leadership('svc-1')
        self.patch(FakeCoordinator, 'create_group', _raise_exists)
        leadership.renew()
        self.assertTrue(self.backend.members[b'svc-1']['leader'])


def _raise_exists(self, group):
    raise tooz_coordination.GroupAlreadyExist(group)


class LeaderCastsTest(LeadershipTestCase, state_base.StateTestCase):
    """The Reconciler asks the leadership right before each cast batch."""

    def setUp(self):
        super().setUp()
        self.leader = self.leadership('svc-1')
        self.leader.renew()
        self.agent_api = state_base.FakeAgentAPI()
        self.notifier = state_base.FakeNotifier()
        self.reconciler = convergence.Reconciler(
            self.conf, self.db, self.agent_api, self.notifier,
            signer=self.signing_keys.signer, leader=self.leader.is_leader)

    def test_a_leader_that_loses_its_session_stops_casting(self):
        self.add_image('a', generation=7)
        self.beat('h1', T0)
        self.reconciler.reconcile(None, now=at(10))
        self.assertEqual([('a', 7, 'h1')], self.agent_api.casts)

        self.backend.down = True
        self.leader.renew()
        self.beat('h2', at(20))
        self.agent_api.casts = []
        result = self.reconciler.reconcile(None, now=at(20))
        self.assertEqual([], self.agent_api.casts)
        self.assertEqual(0, result['casts'])
        self.assertNotIn('h2', self.db.image_hosts('a'))

        # No fanout either, and the decision is left to the new leader.
        image = state_base.record('b')
        self.db.record_listing([image], True)
        meta, cast = self.reconciler.distribute(
            None, image, state_base.make_meta('b')['sources'], None)
        self.assertEqual((None, False), (meta, cast))
        self.assertIsNone(self.db.get_image('b')['meta'])
        self.assertEqual([], self.agent_api.casts)

    def test_the_lease_is_checked_between_two_images(self):
        self.add_image('a')
        self.add_image('b')
        self.beat('h1', T0)
        calls = []

        def leader():
            calls.append(1)
            # The lease runs out after the first image's casts.
            return len(calls) <= 2
        self.reconciler.leader = leader
        self.reconciler.reconcile(None, now=at(10))
        self.assertEqual(1, len({c[0] for c in self.agent_api.casts}))
