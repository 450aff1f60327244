"""The systemd units in etc/systemd/: valid for systemd, hardened.

``systemd-analyze verify`` must run here (tools/run-tests.sh installs the
``systemd`` package): a missing binary fails the test rather than
skipping it.
"""

import configparser
import os
import shutil
import subprocess
import sys

from precache.tests import base
from precache.tests.unit import test_entry_points

UNITS_DIR = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'etc',
                         'systemd')
#: Unit -> (console script, user, the paths it may write).
UNITS = {
    'precache-service.service': (
        'precache-service', 'precache',
        {'/var/lib/precache', '/var/log/precache'}),
    'precache-agent.service': (
        'precache-agent', 'nova',
        {'/var/lib/nova/instances', '/var/lib/precache'}),
}
INSTALLED_BIN = '/usr/local/bin/'


def read_unit(name):
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str
    with open(os.path.join(UNITS_DIR, name)) as f:
        parser.read_file(f)
    return parser


class SystemdUnitsTest(base.TestCase):

    def installed_script(self, script):
        """The console script beside this Python, or a stand-in."""
        path = os.path.join(os.path.dirname(sys.executable), script)
        if os.access(path, os.X_OK):
            return path
        path = os.path.join(self.tempdir, 'bin', script)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write('#!/bin/sh\nexit 0\n')
        os.chmod(path, 0o755)
        return path

    def test_systemd_analyze_verify(self):
        analyze = shutil.which('systemd-analyze')
        if analyze is None:
            self.fail('systemd-analyze is not installed: apt-get install '
                      'systemd (tools/run-tests.sh installs it)')
        copies = []
        for name, (script, _user, _paths) in UNITS.items():
            with open(os.path.join(UNITS_DIR, name)) as f:
                text = f.read()
            self.assertIn('ExecStart=%s%s ' % (INSTALLED_BIN, script), text)
            copy = os.path.join(self.tempdir, name)
            with open(copy, 'w') as f:
                f.write(text.replace(INSTALLED_BIN + script,
                                     self.installed_script(script)))
            copies.append(copy)
        result = subprocess.run([analyze, 'verify'] + copies,
                                capture_output=True, text=True, timeout=60)
        # A directive systemd cannot parse is only a warning (status 0).
        self.assertEqual((0, ''), (result.returncode, result.stderr),
                         result.stdout + result.stderr)

    def test_console_scripts_exist(self):
        scripts = test_entry_points.declared()['console_scripts']
        for script, _user, _paths in UNITS.values():
            self.assertIn(script, scripts)

    def test_hardening_and_lifecycle(self):
        for name, (_script, user, paths) in UNITS.items():
            service = read_unit(name)['Service']
            self.assertEqual(user, service['User'], name)
            self.assertEqual(paths, set(service['ReadWritePaths'].split()),
                             name)
            expected = {'ProtectSystem': 'strict', 'ProtectHome': 'yes',
                        'PrivateTmp': 'yes', 'NoNewPrivileges': 'yes',
                        'Restart': 'on-failure', 'KillMode': 'mixed',
                        'Type': 'notify'}
            for key, value in expected.items():
                self.assertEqual(value, service[key], '%s %s' % (name, key))
            self.assertGreater(int(service['TimeoutStopSec']), 60,
                               'above graceful_shutdown_timeout')
            self.assertIn('RestartSec', service)
            self.assertIn('--config-file /etc/precache/precache.conf',
                          service['ExecStart'])
