"""Where the Squid fixture finds precache's sample configuration."""

import os

import fixtures

from precache.tests import base
from precache.tests import fixtures as servers
from precache.tests.fixtures import squid


class SampleConfigTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        self.checkout = os.path.join(self.root, 'checkout.conf')
        self.installed = os.path.join(self.root, 'installed.conf')

    def _candidates(self, *existing):
        for path in existing:
            with open(path, 'w') as f:
                f.write('http_port @HTTP_PORT@\n')
        self.useFixture(fixtures.MonkeyPatch(
            'precache.tests.fixtures.squid.SAMPLE_CONFIGS',
            (self.checkout, self.installed)))

    def test_the_checkout_comes_first(self):
        self._candidates(self.checkout, self.installed)
        self.assertEqual(self.checkout, squid.sample_config())

    def test_an_installed_copy_is_used_without_a_checkout(self):
        # A normal install: the module lives under site-packages.
        self._candidates(self.installed)
        self.assertEqual(self.installed, squid.sample_config())
        self.assertEqual('http_port 127.0.0.1:3128\n', squid.render_config(
            {'HTTP_PORT': '127.0.0.1:3128'}))

    def test_none_found_names_where_it_looked(self):
        self._candidates()
        exc = self.assertRaises(servers.ServerError, squid.sample_config)
        self.assertIn(self.checkout, str(exc))
        self.assertIn(self.installed, str(exc))

    def test_the_installed_path_is_where_setup_cfg_puts_it(self):
        import configparser
        parser = configparser.ConfigParser()
        parser.read(os.path.join(servers._REPO_ROOT, 'setup.cfg'))
        data_files = parser['files']['data_files']
        self.assertIn('etc/precache/squid =\netc/squid/precache-squid.conf',
                      data_files)
        self.assertTrue(squid.SAMPLE_CONFIGS[1].endswith(
            os.path.join('etc', 'precache', 'squid', 'precache-squid.conf')))
