"""Every entry point declared in setup.cfg imports, under its name."""

import configparser
import importlib
import os

from precache.tests import base

SETUP_CFG = os.path.join(os.path.dirname(__file__), '..', '..', '..',
                         'setup.cfg')

#: Namespaces and names that configuration files refer to: they must not
#: change whatever the layout of the code.
STABLE_NAMES = {
    'precache.listers': {'glance', 'static', 'directory'},
    'precache.fetchers': {'glance', 'swift', 'file'},
    'precache.servers': {'http', 'glance', 'bittorrent', 'swift'},
    'precache.stores': {'nova-libvirt', 'directory'},
    'precache.sources': {'http', 'glance', 'swift', 'bittorrent',
                         'delta'},
    'console_scripts': {'precache-service', 'precache-agent',
                        'precache-all-in-one', 'precache-manage',
                        'precache-status', 'precache'},
}


def declared():
    """``{namespace: {name: 'module:attr'}}`` from setup.cfg."""
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    found = {}
    for namespace, lines in parser['entry_points'].items():
        for line in lines.strip().splitlines():
            name, _, target = line.partition('=')
            found.setdefault(namespace, {})[name.strip()] = target.strip()
    return found


class EntryPointsTest(base.TestCase):

    def test_every_entry_point_imports(self):
        for namespace, entries in declared().items():
            for name, target in entries.items():
                module, _, attr = target.partition(':')
                obj = importlib.import_module(module)
                for part in attr.split('.'):
                    obj = getattr(obj, part)
                self.assertTrue(callable(obj), '%s %s' % (namespace, name))

    def test_configured_names_are_stable(self):
        entries = declared()
        for namespace, names in STABLE_NAMES.items():
            self.assertEqual(names, set(entries.get(namespace, {})),
                             namespace)
