"""Every command's first output reads well: no library warning."""

import importlib.util
import os
import subprocess
import sys

from precache.tests import base
from precache.tests.unit import test_entry_points

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..',
                                    '..', '..'))


def run_python(*args):
    # PYTHONWARNINGS (tox sets it) would hide what an operator sees.
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONWARNINGS'}
    return subprocess.run([sys.executable] + list(args), capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=120)


class NoEventletWarningTest(base.TestCase):

    def test_the_libraries_do_warn_without_precache(self):
        # What the commands' filter is for; if eventlet stops warning (or
        # is not installed) the filter can go.
        result = run_python('-c', 'import oslo_messaging')
        if importlib.util.find_spec('eventlet') is not None:
            self.assertIn('Eventlet is deprecated', result.stderr)

    def test_no_command_shows_eventlet_deprecation(self):
        scripts = test_entry_points.declared()['console_scripts']
        for name, target in sorted(scripts.items()):
            module = target.partition(':')[0]
            result = run_python('-m', module, '--help')
            self.assertEqual(0, result.returncode, name + result.stderr)
            self.assertNotIn('Eventlet', result.stdout + result.stderr, name)
            self.assertNotIn('Warning', result.stderr, name)


class QemuImgMissingTest(base.TestCase):

    def test_agent_start_is_one_line_naming_the_package(self):
        conf = os.path.join(self.tempdir, 'agent.conf')
        with open(conf, 'w') as f:
            f.write('[DEFAULT]\ntransport_url = fake:/\n[agent]\n'
                    'store = directory\n[directory_store]\npath = %s\n'
                    '[signing]\nenabled = false\n'
                    % os.path.join(self.tempdir, 'images'))
        empty = os.path.join(self.tempdir, 'bin')
        os.mkdir(empty)
        env = dict(os.environ, PATH=empty)
        result = subprocess.run(
            [sys.executable, '-m', 'precache.cmd.agent', '--config-file',
             conf], capture_output=True, text=True, cwd=REPO, env=env,
            timeout=120)
        self.assertEqual(2, result.returncode, result.stdout)
        self.assertEqual(
            'error: qemu-img is not installed on this host: apt-get install '
            'qemu-utils (dnf install qemu-img on RHEL-like hosts)\n',
            result.stderr)
        self.assertNotIn('Traceback', result.stdout)
