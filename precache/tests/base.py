"""Base classes and fixtures shared by precache's tests."""

import socket

import fixtures
from oslo_config import fixture as config_fixture
from oslotest import base

from precache.common import rpc
import precache.conf  # noqa: F401  (registers the options)
from precache.conf import CONF
from precache.conf import defaults as conf_defaults
from precache.tests.fixtures import signing as signing_fixture

#: The epoch of the metas tests build (a service database's, see
#: :func:`precache.db.api.StateDB.epoch`).
EPOCH = '0123456789abcdef' * 2


class ReservedPorts(fixtures.Fixture):
    """Distinct loopback ports held for the length of a test.

    A port that was free a moment ago (bind to 0, close) may be handed out
    twice, or taken by another test meanwhile. Servers that bind with
    ``SO_REUSEPORT`` (eventlet's, hence Swift's) do not even fail then:
    they share the port and the kernel splits the connections between
    them. Each port here stays bound by a socket that never listens, with
    ``SO_REUSEADDR`` and ``SO_REUSEPORT``, until the test ends: a server
    meant for it can bind it (either option lets it), no automatic port
    choice on the machine hands it out, and while nothing listens on it
    connections are refused.

    :param names: a name for each port wanted.
    """

    def __init__(self, names):
        super().__init__()
        self.names = tuple(names)

    def _setUp(self):
        self.ports = {}
        for name in self.names:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.addCleanup(sock.close)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(('127.0.0.1', 0))
            self.ports[name] = sock.getsockname()[1]


class TestCase(base.BaseTestCase):
    """Base test case: a clean configuration and a temp directory.

    ``self.flags(group=..., **kw)`` overrides options for one test;
    ``self.tempdir`` is a fresh directory removed after the test.
    Signing is on, as in production: ``self.signing_keys`` is a fresh key
    pair that ``[signing]`` names on both sides (service and agent), and
    ``self.sign(meta)`` signs a meta with it.
    """

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.NestedTempfile())
        self.config_fixture = self.useFixture(config_fixture.Config(CONF))
        self.conf = CONF
        self.conf([], project='precache', default_config_files=[])
        self.tempdir = self.useFixture(fixtures.TempDir()).path
        self.flags(staging_dir=self.tempdir + '/staging', group='service')
        self.signing_keys = self.useFixture(
            signing_fixture.SigningKeysFixture(self.tempdir + '/keys'))
        self.flags(group='signing',
                   private_key_file=self.signing_keys.private_key_file,
                   public_key_files=[self.signing_keys.public_key_file])

    def sign(self, meta):
        """Return ``meta`` signed with the test's key."""
        return self.signing_keys.sign(meta)

    def fake_rpc(self):
        """Initialise :mod:`precache.common.rpc` on ``fake:/`` for a test."""
        conf_defaults.set_defaults(self.conf)  # as the daemons do
        rpc.init(self.conf, url='fake:/')
        self.addCleanup(rpc.cleanup)

    def refusing_port(self):
        """Return a port that refuses connections (nothing listens)."""
        return self.useFixture(ReservedPorts(['refusing'])).ports['refusing']

    def flags(self, group=None, **kw):
        """Override configuration options for this test."""
        self.config_fixture.config(group=group, **kw)

    def register_plugin_opts(self, plugin_class):
        """Register a plugin's own options (as the loader does)."""
        self.config_fixture.register_opts(
            plugin_class.get_config_opts(),
            group=plugin_class.get_config_group())
