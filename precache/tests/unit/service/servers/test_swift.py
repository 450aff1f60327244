"""The ``swift`` image server's options (its uploads: functional tests)."""

from precache.common import exception
from precache.service.servers import http as http_server
from precache.service.servers import swift as swift_server
from precache.tests import base


class TestOptions(base.TestCase):

    def setUp(self):
        super().setUp()
        self.register_plugin_opts(swift_server.SwiftServer)
        self.register_plugin_opts(http_server.HTTPServer)
        self.flags(group=http_server.GROUP,
                   document_root=self.tempdir + '/www')

    def test_min_remaining_below_lifetime(self):
        self.flags(group=swift_server.GROUP, tempurl_lifetime=3600,
                   tempurl_min_remaining=3600)
        exc = self.assertRaises(exception.ConfigurationError,
                                swift_server.SwiftServer, self.conf)
        self.assertIn('tempurl_min_remaining (3600) must be less than '
                      'tempurl_lifetime (3600)', str(exc))

    def test_defaults_are_consistent(self):
        server = swift_server.SwiftServer(self.conf)
        self.assertEqual('precache', server.options.container)
        self.assertFalse(server.options.http_fallback)
