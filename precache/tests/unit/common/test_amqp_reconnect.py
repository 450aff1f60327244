"""kombu reconnections close what they replace and are announced."""

import kombu

from precache.common import amqp_reconnect
from precache.tests import base


class AmqpReconnectTest(base.TestCase):

    def setUp(self):
        super().setUp()
        amqp_reconnect.install()
        self.calls = []
        amqp_reconnect.add_reconnect_listener(self.listener)
        self.addCleanup(amqp_reconnect.remove_reconnect_listener,
                        self.listener)
        self.connection = kombu.Connection('memory://')
        self.addCleanup(self.connection.release)

    def listener(self):
        self.calls.append(True)

    def break_connection(self):
        """Make the transport report the connection as lost (a reset)."""
        transport = self.connection.transport
        self.patch(transport, 'verify_connection', lambda conn: False)
        return self.connection._connection, transport

    def test_first_connection_is_not_a_reconnection(self):
        self.connection.ensure_connection()
        self.assertTrue(self.connection.connected)
        self.assertEqual([], self.calls)

    def test_broken_connection_is_closed_before_reconnecting(self):
        self.connection.ensure_connection()
        old, old_transport = self.break_connection()
        closed = []
        self.patch(old_transport, 'close_connection', closed.append)

        self.connection.ensure_connection()

        self.assertEqual([old], closed)
        self.assertIsNot(old, self.connection._connection)
        self.assertIsNot(old_transport, self.connection.transport)
        self.assertTrue(self.connection.connected)
        self.assertEqual([True], self.calls)

    def test_live_connection_is_kept(self):
        self.connection.ensure_connection()
        live = self.connection._connection
        self.connection.ensure_connection()
        self.assertIs(live, self.connection._connection)
        self.assertEqual([], self.calls)

    def test_install_is_idempotent(self):
        patched = kombu.Connection.ensure_connection
        amqp_reconnect.install()
        self.assertIs(patched, kombu.Connection.ensure_connection)

    def test_failing_listener_does_not_stop_the_others(self):
        def failing():
            raise RuntimeError('boom')
        amqp_reconnect.add_reconnect_listener(failing)
        self.addCleanup(amqp_reconnect.remove_reconnect_listener, failing)
        self.connection.ensure_connection()
        self.break_connection()
        self.connection.ensure_connection()
        self.assertEqual([True], self.calls)
