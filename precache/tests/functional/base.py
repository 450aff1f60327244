"""Base class of the functional tests (real servers, real clients)."""

from precache.common import glance
from precache.tests import base

#: The epoch of the metas tests build.
EPOCH = base.EPOCH


class FunctionalTestCase(base.TestCase):
    """A :class:`precache.tests.base.TestCase` for tests on real servers.

    The servers themselves are fixtures in
    :mod:`precache.tests.fixtures`.
    """

    @classmethod
    def use_class_fixture(cls, fixture):
        """Set ``fixture`` up once for every test of the class.

        It is cleaned up after the class's last test, and also when a
        later step of ``setUpClass`` fails.

        :returns: the fixture.
        """
        fixture.setUp()
        cls.addClassCleanup(fixture.cleanUp)
        return fixture

    def use_glance(self, glance_server):
        """Point the ``[glance]`` options at a test Glance server.

        The server has no Keystone: keystoneauth1's ``none`` plugin and the
        server's endpoint are configured, as an operator would.

        :param glance_server: a started
            :class:`~precache.tests.fixtures.glance.GlanceServerFixture`.
        """
        self.config_fixture.register_opts(glance.auth_plugin_opts('none'),
                                          group='glance')
        self.flags(group='glance', auth_type='none',
                   endpoint=glance_server.endpoint)
