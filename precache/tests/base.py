"""Base classes and fixtures shared by precache's unit tests."""

import socket

import fixtures
from oslo_config import fixture as config_fixture
from oslotest import base

import precache.conf  # noqa: F401  (registers the options)
from precache.conf import CONF


class RefusingPort(fixtures.Fixture):
    """A local TCP port that refuses connections while the test runs.

    The port is bound and never listened on, so connecting to it is
    refused at once and no other process can take it meanwhile (as it
    could a port that was only free for a moment).
    """

    def _setUp(self):
        sock = socket.socket()
        self.addCleanup(sock.close)
        sock.bind(('127.0.0.1', 0))
        self.port = sock.getsockname()[1]


class TestCase(base.BaseTestCase):
    """Base test case: a clean configuration and a temp directory.

    ``self.flags(group=..., **kw)`` overrides options for one test;
    ``self.tempdir`` is a fresh directory removed after the test.
    """

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.NestedTempfile())
        self.config_fixture = self.useFixture(config_fixture.Config(CONF))
        self.conf = CONF
        self.conf([], project='precache', default_config_files=[])
        self.tempdir = self.useFixture(fixtures.TempDir()).path
        self.flags(staging_dir=self.tempdir + '/staging', group='service')

    def refusing_port(self):
        """Return a :class:`RefusingPort`'s port, held for this test."""
        return self.useFixture(RefusingPort()).port

    def flags(self, group=None, **kw):
        """Override configuration options for this test."""
        self.config_fixture.config(group=group, **kw)

    def register_plugin_opts(self, plugin_class):
        """Register a plugin's own options (as the loader does)."""
        self.config_fixture.register_opts(
            plugin_class.get_config_opts(),
            group=plugin_class.get_config_group())
