"""The ``precache`` CLI over oslo.messaging's ``fake:/`` transport: the
real configuration loading, RPC client and error translation."""

import io
import json
import os
import sys

import fixtures
import oslo_messaging as messaging
from oslo_messaging._drivers import common as messaging_common
from oslo_messaging import opts as messaging_opts

from precache.cli import app
from precache.cli import client
from precache.cli import errors
from precache.common import exception
from precache.common import rpc
from precache.service import rpcapi
from precache.tests import base
from precache.tests.unit.cli import test_commands as test_cli


class ServiceEndpoint(object):
    """Answers two operator calls the way precache-service does."""

    target = messaging.Target(version=rpcapi.ServiceAPI.RPC_API_VERSION)

    def list_hosts(self, context):
        return [{'name': 'cmp1', 'up': True, 'labels': [],
                 'cache_bytes': 2048}]

    def show_image(self, context, image_id):
        raise exception.ImageNotFound(image_id=image_id, reason='never seen')


class TransportDefaults(fixtures.Fixture):
    """Restores oslo.messaging's ``control_exchange`` default.

    precache's defaults set it on the option object itself, which would
    otherwise leak into later tests of the same process.
    """

    def _setUp(self):
        [opt] = [opt for _group, opts in messaging_opts.list_opts()
                 for opt in opts if opt.name == 'control_exchange']
        self.addCleanup(messaging.set_transport_defaults, opt.default)


class CLIOverRPCTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(test_cli.RootLogger())
        self.useFixture(TransportDefaults())
        self.addCleanup(rpc.cleanup)
        self.config_file = os.path.join(self.tempdir, 'precache.conf')
        with open(self.config_file, 'w') as f:
            f.write('[DEFAULT]\ntransport_url = fake:/\n'
                    '[rpc]\nservice_topic = cli-test-service\n')

    def start_service(self):
        rpc.init(client.load_config([self.config_file]))
        server = rpc.get_server(
            messaging.Target(topic='cli-test-service', server='svc'),
            [ServiceEndpoint()])
        server.start()
        self.addCleanup(server.wait)
        self.addCleanup(server.stop)

    def run_cli(self, *argv):
        stdout, stderr = io.StringIO(), io.StringIO()
        cli = app.PrecacheApp(stdout=stdout, stderr=stderr)
        status = cli.run(['--config-file', self.config_file] + list(argv))
        return status, stdout.getvalue(), stderr.getvalue()

    def test_call_reaches_the_service_topic_from_the_config_file(self):
        self.start_service()
        status, out, err = self.run_cli('hosts', '-f', 'json')
        self.assertEqual(0, status, err)
        [row] = json.loads(out)
        self.assertEqual('cmp1', row['Host'])
        self.assertEqual(2048, row['Cache size'])

    def test_unknown_image_is_a_clear_error(self):
        self.start_service()
        status, out, err = self.run_cli('show', 'img-x')
        self.assertEqual(2, status)
        self.assertEqual('', out)
        self.assertIn('Image img-x is not known to precache-service', err)

    def test_no_service_is_a_clear_one_line_error(self):
        status, out, err = self.run_cli('--rpc-timeout', '0.2', 'status')
        self.assertEqual(2, status)
        self.assertEqual('', out)
        self.assertEqual(
            "precache: No answer from precache-service within 0.2 s "
            "(topic 'cli-test-service', transport fake:///). Check that "
            "the service runs and that transport_url and [rpc] "
            "service_topic match its configuration.\n", err)

    def test_version_pin_refuses_the_call_before_sending(self):
        with open(self.config_file, 'a') as f:
            f.write('[upgrade_levels]\nservice = 1.0\n')
        status, out, err = self.run_cli('--rpc-timeout', '0.2', 'hosts')
        self.assertEqual(2, status)
        self.assertEqual('', out)
        self.assertIn('precache: Cannot list hosts: Cannot send list_hosts '
                      'to precache-service: it needs version 1.1 of the '
                      'RPC API and [upgrade_levels] service caps it at 1.0',
                      err)

    def test_missing_config_file(self):
        self.config_file = os.path.join(self.tempdir, 'absent.conf')
        status, _out, err = self.run_cli('status')
        self.assertEqual(2, status)
        self.assertIn('Cannot read the configuration', err)
        self.assertIn('absent.conf', err)

    def test_no_config_file_anywhere_stops_at_once(self):
        # Without any file the defaults (rabbit:// on localhost) would make
        # the command wait for a broker: it says so instead, at once.
        for finder in ('find_config_files', 'find_config_dirs'):
            self.useFixture(fixtures.MockPatch(
                'oslo_config.cfg.' + finder, return_value=[]))
        connect = self.useFixture(fixtures.MockPatch(
            'precache.common.rpc.init')).mock
        stdout, stderr = io.StringIO(), io.StringIO()
        status = app.PrecacheApp(stdout=stdout, stderr=stderr).run(
            ['hosts'])
        self.assertEqual(2, status)
        self.assertIn('no --config-file given and no precache.conf in',
                      stderr.getvalue())
        self.assertIn('/etc/precache/', stderr.getvalue())
        connect.assert_not_called()

    def test_a_found_default_config_file_is_read(self):
        self.useFixture(fixtures.MockPatch(
            'oslo_config.cfg.find_config_files',
            return_value=[self.config_file]))
        conf = client.load_config()
        self.assertEqual('cli-test-service', conf.rpc.service_topic)


class NotAllowed(Exception):
    """An exception of a module outside rpc.ALLOWED_EXMODS."""


class RemoteExceptionTest(base.TestCase):
    """The exceptions a broker transport hands the CLI.

    oslo.messaging's drivers rebuild them as the tests do here.
    """

    def setUp(self):
        super().setUp()
        self.fake_rpc()
        self.client = client.ServiceClient(self.conf, timeout=1)

    @staticmethod
    def over_the_wire(exc):
        try:
            raise exc
        except Exception:
            data = messaging_common.serialize_remote_exception(
                sys.exc_info())
        return messaging_common.deserialize_remote_exception(
            data, rpc.ALLOWED_EXMODS)

    def fail_with(self, exc):
        self.useFixture(fixtures.MockPatchObject(
            self.client, '_call_within', side_effect=exc))

    def test_precache_exceptions_come_back_as_their_class(self):
        exc = self.over_the_wire(exception.ImageNotFound(image_id='img',
                                                         reason='gone'))
        self.assertIsInstance(exc, exception.ImageNotFound)
        self.assertIsInstance(exc, exception.NotFound)
        self.assertEqual('img', exc.kwargs['image_id'])

    def test_unknown_image(self):
        self.fail_with(self.over_the_wire(exception.ImageNotFound(
            image_id='img', reason='gone')))
        exc = self.assertRaises(errors.UnknownImage, self.client.call,
                                'show_image', image_id='img')
        self.assertIn('Image img is not known to precache-service',
                      str(exc))

    def test_other_precache_failure_names_class_and_message(self):
        self.fail_with(self.over_the_wire(exception.FetchFailed(
            image_id='img', reason='Glance said 503')))
        exc = self.assertRaises(errors.ServiceError, self.client.call,
                                'request_cache', image_id='img')
        self.assertEqual(
            'precache-service failed to request cache: FetchFailed: '
            'Fetching image img failed: Glance said 503', str(exc))

    def test_exception_of_another_module_is_a_service_error(self):
        remote = self.over_the_wire(NotAllowed('database is locked'))
        self.assertIsInstance(remote, messaging.RemoteError)
        self.fail_with(remote)
        exc = self.assertRaises(errors.ServiceError, self.client.call,
                                'list_hosts')
        self.assertIn('failed to list hosts: NotAllowed: database is locked',
                      str(exc))
