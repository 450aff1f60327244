"""The help of each option naming a plugin lists every built-in one."""

import re

from precache.conf import agent as agent_conf
from precache.conf import service as service_conf
from precache.tests import base
from precache.tests.unit import test_entry_points

#: The option that selects plugins of each namespace.
SELECTING_OPTIONS = {
    'precache.listers': (service_conf.service_opts, 'listers'),
    'precache.fetchers': (service_conf.service_opts, 'fetcher'),
    'precache.servers': (service_conf.service_opts, 'server'),
    'precache.stores': (agent_conf.agent_opts, 'store'),
}


class PluginHelpTest(base.TestCase):

    def test_every_built_in_plugin_is_in_its_options_help(self):
        declared = test_entry_points.declared()
        for namespace, (opts, name) in SELECTING_OPTIONS.items():
            [opt] = [opt for opt in opts if opt.name == name]
            built_in = re.search(r'Built in: (.*)', opt.help).group(1)
            for plugin in declared[namespace]:
                self.assertRegex(built_in, r'(^|, )%s\b' % re.escape(plugin),
                                 '%s: %s' % (name, namespace))
