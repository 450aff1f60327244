"""Port reservations for test servers (base.ReservedPorts)."""

import errno
import socket

from precache.tests import base


def _listener(port, reuse_port):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(('127.0.0.1', port))
    sock.listen(1)
    return sock


class ReservedPortsTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.ports = self.useFixture(
            base.ReservedPorts(['proxy', 'object', 'memcached'])).ports

    def test_ports_are_distinct_and_named(self):
        self.assertEqual({'proxy', 'object', 'memcached'}, set(self.ports))
        self.assertEqual(3, len(set(self.ports.values())))

    def test_no_one_else_takes_a_reserved_port(self):
        with socket.socket() as other:
            error = self.assertRaises(OSError, other.bind,
                                      ('127.0.0.1', self.ports['proxy']))
        self.assertEqual(errno.EADDRINUSE, error.errno)

    def test_the_server_binds_it_and_gets_the_connections(self):
        # An eventlet server (SO_REUSEPORT) and memcached (SO_REUSEADDR).
        for name, reuse_port in (('proxy', True), ('memcached', False)):
            with _listener(self.ports[name], reuse_port) as server:
                with socket.create_connection(
                        ('127.0.0.1', self.ports[name]), timeout=5):
                    accepted, _ = server.accept()
                    accepted.close()
