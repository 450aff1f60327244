"""precache-status upgrade check on good and bad configurations.

The command runs as operators run it (``python -m precache.cmd.status``,
a process of its own), on files written here; ``--json`` gives each
check's code and details.
"""

import json
import os
import sqlite3
import subprocess
import sys

from precache.db import api as db_api
from precache.db import migration
from precache.tests import base

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..',
                                    '..', '..'))
SUCCESS, WARNING, FAILURE = 0, 1, 2
#: Nova counts its image cache in the disk it reports (precache's advice).
RESERVED = '[workarounds]\nreserve_disk_resource_for_image_cache = true\n'
ORIGINS = 'http://precache.example.org:8780/'


class UpgradeCheckTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.state_path = os.path.join(self.tempdir, 'state')
        self.instances = os.path.join(self.tempdir, 'nova', 'instances')
        os.makedirs(self.instances)
        self.nova_conf = os.path.join(self.tempdir, 'nova.conf')
        self.write(self.nova_conf, '[DEFAULT]\ninstances_path = %s\n'
                   % self.instances + RESERVED)

    def write(self, path, text):
        with open(path, 'w') as f:
            f.write(text)
        return path

    def config(self, text, name='precache.conf', signing=True):
        keys = self.signing_keys
        self.config_path = os.path.join(self.tempdir, name)
        return self.write(self.config_path,
                          '[DEFAULT]\ntransport_url = fake:/\n'
                          'state_path = %s\n' % self.state_path +
                          ('[signing]\nprivate_key_file = %s\n'
                           'public_key_files = %s\n' % (
                               keys.private_key_file, keys.public_key_file)
                           if signing else '') + text)

    def agent_config(self, text='', origins=ORIGINS, **kwargs):
        return self.config(
            '[agent]\nstore = nova-libvirt\nallowed_origins = %s\n%s\n'
            '[nova_libvirt]\nnova_config_files = %s\nstate_dir = %s/agent\n'
            % (origins, text, self.nova_conf, self.state_path), **kwargs)

    def env(self):
        """No precache.conf in the home directory."""
        home = os.path.join(self.tempdir, 'home')
        os.makedirs(home, exist_ok=True)
        return dict(os.environ, HOME=home)

    def run_check(self, *args, table=False):
        env = self.env()
        result = subprocess.run(
            [sys.executable, '-m', 'precache.cmd.status'] + list(args) +
            ['upgrade', 'check'] + ([] if table else ['--json']),
            capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
        if table:
            return result
        self.assertEqual('', result.stderr)
        checks = json.loads(result.stdout)['checks']
        return result.returncode, {c['check']: (c['result'], c['details'])
                                   for c in checks}

    def synced_database(self):
        os.makedirs(self.state_path)
        db_api.StateDB('sqlite:///%s/precache.sqlite' % self.state_path).sync()

    # Service hosts ------------------------------------------------------

    def test_good_service_host(self):
        self.synced_database()
        conf = self.config('[service]\nlisters = directory,static\n'
                           'fetcher = file\nserver = http\n')
        code, checks = self.run_check('--config-file', conf)
        self.assertEqual(SUCCESS, code, checks)
        self.assertEqual(SUCCESS, checks['Configuration'][0])
        self.assertIn('checked as a service host (from its sections)',
                      checks['Configuration'][1])
        self.assertIn('is at revision %s, this release\'s' %
                      migration.head_revision(), checks['Database schema'][1])
        self.assertEqual('Loaded: [service] listers directory, [service] '
                         'listers static, [service] fetcher file, '
                         '[service] server http.', checks['Plugins'][1])
        self.assertEqual('Not an agent host: skipped.',
                         checks['Agent store'][1])

    def test_the_table_and_the_config_file_after_the_subcommand(self):
        self.synced_database()
        conf = self.config('[service]\nfetcher = file\n')
        result = self.run_check(table=True)
        self.assertEqual(FAILURE, result.returncode)
        self.assertIn('No configuration file was read', result.stdout)
        self.assertIn('Details: No configuration: skipped.', result.stdout)
        env = self.env()
        result = subprocess.run(
            [sys.executable, '-m', 'precache.cmd.status', 'upgrade', 'check',
             '--config-file', conf], capture_output=True, text=True,
            cwd=REPO, env=env, timeout=120)
        self.assertEqual(SUCCESS, result.returncode, result.stdout)
        self.assertIn('| Check: Database schema', result.stdout)
        self.assertIn('| Result: Success', result.stdout)
        self.assertNotIn('Eventlet', result.stdout + result.stderr)

    def test_unknown_plugin_and_schema_not_synced_fail(self):
        conf = self.config('[service]\nlisters = glance,nonesuch\n'
                           'auto_db_sync = false\n')
        code, checks = self.run_check('--config-file', conf)
        self.assertEqual(FAILURE, code)
        result, details = checks['Plugins']
        self.assertEqual(FAILURE, result)
        self.assertIn("Plugin 'nonesuch' is not installed in entry point "
                      "namespace precache.listers", details)
        self.assertIn('directory, glance, static', details)
        self.assertIn('[service] listers', details)
        result, details = checks['Database schema']
        self.assertEqual(FAILURE, result)
        self.assertIn('auto_db_sync is off: run "precache-manage db sync"',
                      details)

    def test_empty_database_with_auto_sync_is_a_note(self):
        code, checks = self.run_check('--config-file', self.config(
            '[service]\nfetcher = file\n'))
        self.assertEqual(SUCCESS, code, checks)
        self.assertIn('upgrades it to %s when it starts' %
                      migration.head_revision(), checks['Database schema'][1])

    def test_schema_of_an_unknown_revision_fails(self):
        self.synced_database()
        with sqlite3.connect(os.path.join(self.state_path,
                                          'precache.sqlite')) as db:
            db.execute("UPDATE alembic_version SET version_num = 'f00d'")
        code, checks = self.run_check('--config-file', self.config(
            '[database]\nconnection = sqlite:///%s/precache.sqlite\n'
            % self.state_path))
        self.assertEqual(FAILURE, code)
        self.assertIn('at revision f00d, which this release does not know',
                      checks['Database schema'][1])

    # Agent hosts --------------------------------------------------------

    def test_good_agent_host(self):
        self.write(self.nova_conf, '[DEFAULT]\ninstances_path = %s\n'
                   '[image_cache]\nsubdirectory_name = _cache\n'
                   'remove_unused_original_minimum_age_seconds = 86400\n'
                   % self.instances + RESERVED)
        code, checks = self.run_check('--config-file', self.agent_config())
        self.assertEqual(SUCCESS, code, checks)
        self.assertEqual('Not a service host: skipped.',
                         checks['Database schema'][1])
        self.assertEqual('Loaded: [agent] store nova-libvirt.',
                         checks['Plugins'][1])
        details = checks['Agent store'][1]
        self.assertIn('lands images in %s/_cache' % self.instances, details)
        self.assertIn('force_raw_images True', details)
        self.assertIn('(3600 s) is well below', checks[
            'Nova image cache aging'][1])

    def test_keepalive_not_well_below_novas_minimum_age_warns(self):
        self.write(self.nova_conf, '[DEFAULT]\ninstances_path = %s\n'
                   '[image_cache]\n'
                   'remove_unused_original_minimum_age_seconds = 5000\n'
                   % self.instances + RESERVED)
        code, checks = self.run_check('--config-file', self.agent_config(
            'keepalive_interval = 3600'))
        self.assertEqual(WARNING, code, checks)
        result, details = checks['Nova image cache aging']
        self.assertEqual(WARNING, result)
        self.assertIn('[agent] keepalive_interval (3600 s) is not well below '
                      'Nova\'s [image_cache] remove_unused_original_minimum_'
                      'age_seconds (5000 s)', details)
        self.assertIn('Set keepalive_interval to 2500 s or less', details)

    def test_nova_never_removing_base_files_needs_no_margin(self):
        self.write(self.nova_conf, '[DEFAULT]\ninstances_path = %s\n'
                   'remove_unused_original_minimum_age_seconds = 100\n'
                   '[image_cache]\nremove_unused_base_images = false\n'
                   % self.instances + RESERVED)
        code, checks = self.run_check('--config-file', self.agent_config())
        self.assertEqual(SUCCESS, code, checks)
        self.assertIn('Nova never removes', checks[
            'Nova image cache aging'][1])

    def test_rbd_backed_nova_fails(self):
        self.write(self.nova_conf, '[libvirt]\nimages_type = rbd\n')
        code, checks = self.run_check('--config-file', self.agent_config())
        self.assertEqual(FAILURE, code)
        result, details = checks['Agent store']
        self.assertEqual(FAILURE, result)
        self.assertIn('precache-agent would not start', details)
        self.assertIn('images_type = rbd', details)

    def test_missing_instances_path_warns(self):
        self.write(self.nova_conf, '[DEFAULT]\ninstances_path = %s/absent\n'
                   % self.tempdir)
        code, checks = self.run_check('--config-file', self.agent_config())
        self.assertEqual(WARNING, code)
        self.assertIn('install nova-compute on this host first',
                      checks['Agent store'][1])

    def test_neither_section_checks_both_roles(self):
        code, checks = self.run_check('--config-file', self.config(''))
        self.assertIn('checked as an agent host and a service host (no '
                      '[service], [database] or [agent] section',
                      checks['Configuration'][1])
        self.assertEqual('Loaded: [service] listers glance, [service] '
                         'fetcher glance, [service] server http, [agent] '
                         'store nova-libvirt.', checks['Plugins'][1])

    # Trust and disk accounting ------------------------------------------

    def test_signing_and_origins_on_a_good_agent(self):
        code, checks = self.run_check('--config-file', self.agent_config())
        self.assertEqual(SUCCESS, code, checks)
        self.assertEqual(
            (SUCCESS, 'Signing: trusts key(s) %s.' % self.signing_keys.key_id),
            checks['Signing and origins'])

    def test_missing_key_fails(self):
        conf = self.config('[signing]\npublic_key_files = %s/none.pem\n'
                           '[agent]\nstore = directory\n' % self.tempdir,
                           signing=False)
        code, checks = self.run_check('--config-file', conf)
        self.assertEqual(FAILURE, code)
        result, details = checks['Signing and origins']
        self.assertEqual(FAILURE, result)
        self.assertIn('[signing] public_key_files', details)

    def test_signing_off_and_no_origins_warn(self):
        with open(self.agent_config(origins='', signing=False), 'a') as f:
            f.write('[signing]\nenabled = false\n')
        code, checks = self.run_check('--config-file', self.config_path)
        self.assertEqual(WARNING, checks['Signing and origins'][0])
        self.assertIn('enabled = false', checks['Signing and origins'][1])
        conf = self.agent_config(origins='')
        code, checks = self.run_check('--config-file', conf)
        self.assertEqual(WARNING, code, checks)
        self.assertIn('[agent] allowed_origins is empty',
                      checks['Signing and origins'][1])

    def test_unreserved_image_cache_on_the_instances_disk_warns(self):
        self.write(self.nova_conf, '[DEFAULT]\ninstances_path = %s\n'
                   % self.instances)
        code, checks = self.run_check('--config-file', self.agent_config())
        self.assertEqual(WARNING, code, checks)
        result, details = checks['Nova disk accounting']
        self.assertEqual(WARNING, result)
        self.assertIn('reserve_disk_resource_for_image_cache is false',
                      details)
