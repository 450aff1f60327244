"""Checks that the RabbitMQ test harness carries real oslo.messaging casts."""

import threading
import uuid

from oslo_config import cfg
import oslo_messaging
from oslo_messaging import conffixture
from oslotest import base

from precache.tests.fixtures import rabbitmq

DELIVERY_TIMEOUT = 20


class _Endpoint(object):
    """An RPC endpoint that records the casts it receives."""

    def __init__(self):
        self.received = []
        self.event = threading.Event()

    def ping(self, ctxt, payload):
        """Record *payload* and wake up the waiting test."""
        self.received.append(payload)
        self.event.set()


class TestRabbitMQServer(base.BaseTestCase):
    """One broker, one client, two RPC servers on a fanout topic."""

    def setUp(self):
        super(TestRabbitMQServer, self).setUp()
        self.broker = self.useFixture(rabbitmq.RabbitMQFixture())
        # A private cfg.ConfigOpts makes casts fail or get dropped on the
        # server side (oslo.messaging 18.3); use the global one, restored
        # by the fixture afterwards.
        self.useFixture(conffixture.ConfFixture(
            cfg.CONF, transport_url=self.broker.transport_url))
        self.transport = oslo_messaging.get_rpc_transport(cfg.CONF)
        self.addCleanup(self.transport.cleanup)
        self.topic = 'precache-test-%s' % uuid.uuid4().hex[:8]

    def _start_server(self, name):
        """Start an RPC server called *name*; return its endpoint."""
        endpoint = _Endpoint()
        target = oslo_messaging.Target(topic=self.topic, server=name)
        server = oslo_messaging.get_rpc_server(self.transport, target,
                                               [endpoint])
        server.start()
        self.addCleanup(server.wait)
        self.addCleanup(server.stop)
        return endpoint

    def test_fanout_cast_reaches_every_server(self):
        self.assertTrue(self.broker.transport_url.startswith('rabbit://'))
        endpoints = [self._start_server('host-%d' % i) for i in range(2)]
        client = oslo_messaging.get_rpc_client(
            self.transport, oslo_messaging.Target(topic=self.topic))

        client.prepare(fanout=True).cast({}, 'ping', payload='hello')

        for endpoint in endpoints:
            self.assertTrue(endpoint.event.wait(DELIVERY_TIMEOUT),
                            'the cast did not reach every server')
            self.assertEqual(['hello'], endpoint.received)
