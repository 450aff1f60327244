"""The control plane over a TLS-only RabbitMQ.

The class's broker (:class:`~precache.tests.fixtures.rabbitmq.
RabbitMQFixture` with ``tls=True``) has no plain AMQP listener and a
certificate of a CA of its own. With ``[oslo_messaging_rabbit] ssl = true``
and ``ssl_ca_file`` naming that CA, a real precache-agent process
heartbeats, receives a signed cast, lands the image and reports to the
service endpoint of this process; the ``precache`` CLI asks a real
precache-service process, itself on TLS, for the status. A client that
trusts another CA cannot connect.
"""

import json
import os
import ssl
import subprocess
import sys
import time

import kombu

from precache.cli import errors as cli_errors
from precache.tests.fixtures import control_plane
from precache.tests.fixtures import tls
from precache.tests.functional import test_distribution

#: Seconds the refused clients are given.
REFUSED_TIMEOUT = 5


class BrokerTLSTest(test_distribution.OneImageTestCase):

    broker_tls = True
    data_mib = 2

    def cli_config(self, name, rabbit_options, topics=None):
        path = os.path.join(self.tempdir, name)
        control_plane.write_config(path, {
            'DEFAULT': {'transport_url': self.messaging.transport_url},
            'oslo_messaging_rabbit': dict(
                rabbit_options, hostname='cli-' + self.messaging.suffix),
            'rpc': topics or {
                'service_topic': self.messaging.service_topic,
                'agent_topic': self.messaging.agent_topic}})
        return path

    def precache(self, config_file, *args, rpc_timeout=20, timeout=120):
        """Run the ``precache`` CLI; return (exit status, stdout, stderr)."""
        result = subprocess.run(
            [sys.executable, '-m', 'precache.cli.app', '--config-file',
             config_file, '--rpc-timeout', str(rpc_timeout)] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=timeout, text=True)
        return result.returncode, result.stdout, result.stderr

    def test_broker_is_tls_only(self):
        self.assertTrue(self.broker.transport_url.startswith(
            'rabbit://guest:guest@127.0.0.1:%d/' % self.broker.port))
        with open(self.broker.ca_file) as f:
            self.assertIn('BEGIN CERTIFICATE', f.read())
        # Plain AMQP on the broker's port gets a TLS alert, not AMQP.
        connection = kombu.Connection(
            'amqp://guest:guest@127.0.0.1:%d//' % self.broker.port,
            connect_timeout=REFUSED_TIMEOUT)
        self.addCleanup(connection.release)
        self.assertRaises(connection.connection_errors + (OSError,),
                          connection.connect)

    def test_agent_and_service_endpoint_over_tls(self):
        # (1) A real agent process: heartbeats, a signed cast, the image.
        [agent] = self.start_agents(1, options={
            'oslo_messaging_rabbit': self.broker_tls_options()})
        self.cast(agent)
        # (2) The endpoint of this process gets the agent's report.
        report = self.endpoint.report_for(agent.host, self.image_id)
        self.assertEqual('cached', report['status'], report)
        self.assertLanded(agent, self.image_id, self.raw)

    def test_service_process_and_cli_over_tls(self):
        # (3) A real precache-service process (this process's endpoint
        # keeps no state to answer from), on topics of its own and with no
        # image: it only answers the CLI.
        empty = os.path.join(self.tempdir, 'no-images')
        os.makedirs(empty)
        topics = {'service_topic': self.messaging.service_topic + '-cli',
                  'agent_topic': self.messaging.agent_topic + '-cli'}
        service = self.useFixture(control_plane.ServiceProcessFixture(
            self.messaging, self.tempdir, empty, options={
                'oslo_messaging_rabbit': self.broker_tls_options(),
                'rpc': topics}))
        config = self.cli_config('cli.conf', self.broker_tls_options(),
                                 topics)
        status, out, err = self.precache(config, 'status')
        self.assertEqual(0, status, out + err + service.log_tail())
        self.assertTrue(out.strip(), err)
        status, out, err = self.precache(config, 'images', '-f', 'json')
        self.assertEqual(0, status, out + err + service.log_tail())
        self.assertEqual([], json.loads(out))

    def test_client_trusting_another_ca_cannot_connect(self):
        other_ca = tls.make_ca(self.tempdir, name='another CA')
        # What oslo.messaging gives kombu for ssl + ssl_ca_file.
        connection = kombu.Connection(
            'amqp://guest:guest@127.0.0.1:%d//' % self.broker.port,
            ssl={'ca_certs': other_ca.cert_file,
                 'cert_reqs': ssl.CERT_REQUIRED,
                 'server_hostname': '127.0.0.1'},
            connect_timeout=REFUSED_TIMEOUT)
        self.addCleanup(connection.release)
        exc = self.assertRaises(ssl.SSLCertVerificationError,
                                connection.connect)
        self.assertIn('certificate verify failed', str(exc))
        # The CLI with that CA: no connection, so no answer, in time.
        started = time.monotonic()
        status, out, err = self.precache(
            self.cli_config('other-ca.conf', {
                'ssl': True, 'ssl_ca_file': other_ca.cert_file}),
            'status', rpc_timeout=REFUSED_TIMEOUT, timeout=60)
        self.assertEqual(cli_errors.ServiceUnreachable.exit_code, status,
                         out + err)
        self.assertLess(time.monotonic() - started, 45)
        self.assertIn('No answer from precache-service', err)
        self.assertEqual([], self.endpoint.heartbeats)
