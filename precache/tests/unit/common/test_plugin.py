"""Loading plugins through stevedore."""

import fixtures
from oslo_config import cfg

from precache.common import exception
from precache.common import plugin
from precache.tests import base


class PluginLoaderTest(base.TestCase):

    def test_missing_plugin_names_namespace_and_option(self):
        exc = self.assertRaises(
            exception.PluginNotFound, plugin.load_plugin,
            'precache.fetchers', 'no-such-thing', self.conf,
            option='[service] fetcher')
        message = str(exc)
        self.assertIn("'no-such-thing'", message)
        self.assertIn('precache.fetchers', message)
        self.assertIn('[service] fetcher', message)
        self.assertIn('file', message)  # lists what is installed

    def test_loaded_plugin_gets_its_options_registered(self):
        lister = plugin.load_plugin('precache.listers', 'directory',
                                    self.conf)
        self.assertEqual('directory', lister.name)
        self.assertIsNone(self.conf.directory_lister.path)

    def test_init_failure_is_a_load_failure(self):
        class Broken(plugin.Plugin):
            def __init__(self, conf):
                raise RuntimeError('boom')

        self.useFixture(fixtures.MockPatchObject(
            plugin, 'load_plugin_class', return_value=Broken))
        exc = self.assertRaises(exception.PluginLoadFailed,
                                plugin.load_plugin, 'precache.listers',
                                'broken', self.conf)
        self.assertIn('boom', str(exc))

    def test_plugin_opts_are_listed_for_the_sample(self):
        groups = dict(plugin.list_plugin_opts())
        self.assertIn('directory_lister', groups)
        self.assertTrue(all(isinstance(o, cfg.Opt)
                            for o in groups['directory_lister']))
