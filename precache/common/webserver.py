"""A threaded HTTP server that serves in a background thread of its own.

The base of precache's built-in servers (the ``http`` image server's web
server, the BitTorrent tracker): it binds an IPv4 or IPv6 address, serves
each client in a daemon thread, and is started and stopped as a unit.

Both listen on networks shared with every compute host, so a client gets
little: the request line and headers must arrive within a deadline for
the whole head (:data:`HEAD_TIMEOUT`; a client trickling a byte at a time
is cut off when it passes, not when it stays silent), and one client
address holds at most a few connections at once
(:data:`MAX_CONNECTIONS_PER_ADDRESS`); further ones are closed at once.
A handful of slow clients therefore holds a handful of threads for
seconds, not the server.
"""

import collections
import http.server
import io
import socket
import threading
import time

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

#: Seconds between two checks for a stop request (``serve_forever``).
POLL_INTERVAL = 0.1
#: Seconds a client has for a request line and its headers, in all.
HEAD_TIMEOUT = 10.0
#: Connections one client address may hold open at once.
MAX_CONNECTIONS_PER_ADDRESS = 16


class HeadTimeout(socket.timeout):
    """The request head did not arrive within its deadline."""


class _DeadlineReader(io.RawIOBase):
    """Reads a socket; each read waits only until :attr:`deadline`.

    Without a deadline, a read waits the socket's own timeout.
    """

    def __init__(self, sock, timeout):
        self._sock = sock
        self._timeout = timeout
        #: Monotonic time the current request head must be read by.
        self.deadline = None

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.deadline is None:
            self._sock.settimeout(self._timeout)
        else:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise HeadTimeout('the request head took too long')
            if self._timeout is not None:
                left = min(left, self._timeout)
            self._sock.settimeout(left)
        try:
            return self._sock.recv_into(buffer)
        except socket.timeout:
            if self.deadline is not None:
                raise HeadTimeout('the request head took too long')
            raise


class RequestHandler(http.server.BaseHTTPRequestHandler):
    """Reads each request head within the server's ``head_timeout``.

    ``timeout`` remains the longest a socket operation may wait once the
    head is in (sending a response, reading a body).
    """

    def setup(self):
        super().setup()
        # Replace the plain reader: closing it releases its hold on the
        # socket, which closes with the connection.
        self.rfile.close()
        self._reader = _DeadlineReader(self.connection, self.timeout)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self):
        self._reader.deadline = time.monotonic() + self.server.head_timeout
        try:
            super().handle_one_request()
        except HeadTimeout:
            LOG.debug('%s did not send a request head within %.1f s; '
                      'closing its connection', self.client_address[0],
                      self.server.head_timeout)
            self.close_connection = True

    def parse_request(self):
        try:
            return super().parse_request()
        finally:
            self._reader.deadline = None
            self.connection.settimeout(self.timeout)


class BackgroundHTTPServer(http.server.ThreadingHTTPServer):
    """Binds ``address`` at once; :meth:`start` serves, :meth:`stop` ends.

    :param address: ``(host, port)`` to bind; port 0 picks a free port.
    :param handler: the request handler class, best a subclass of
        :class:`RequestHandler` (which enforces ``head_timeout``).
    :param head_timeout: seconds a client has for a request line and
        its headers, in all.
    :param max_per_address: connections one client address may hold at
        once; further ones are closed at once. None for no cap.
    """

    daemon_threads = True

    def __init__(self, address, handler, head_timeout=HEAD_TIMEOUT,
                 max_per_address=MAX_CONNECTIONS_PER_ADDRESS):
        if ':' in address[0]:
            self.address_family = socket.AF_INET6
        self.head_timeout = head_timeout
        self.max_per_address = max_per_address
        self._per_address = collections.Counter()
        self._per_address_lock = threading.Lock()
        super().__init__(address, handler)
        self._thread = None

    @property
    def port(self):
        """The port the server is bound to."""
        return self.server_address[1]

    def start(self, name):
        """Serve in a daemon thread called ``name``."""
        self._thread = threading.Thread(
            target=self.serve_forever, name=name,
            kwargs={'poll_interval': POLL_INTERVAL}, daemon=True)
        self._thread.start()

    def stop(self):
        """Stop serving, close the socket and wait for the thread."""
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def process_request(self, request, client_address):
        address = client_address[0]
        with self._per_address_lock:
            if (self.max_per_address is not None and
                    self._per_address[address] >= self.max_per_address):
                refused = True
            else:
                refused = False
                self._per_address[address] += 1
        if refused:
            LOG.debug('%s already holds %d connections; closing a new one',
                      address, self.max_per_address)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release_address(address)
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release_address(client_address[0])

    def _release_address(self, address):
        with self._per_address_lock:
            self._per_address[address] -= 1
            if self._per_address[address] <= 0:
                del self._per_address[address]

    def connections(self, address):
        """Return the connections ``address`` holds now."""
        with self._per_address_lock:
            return self._per_address.get(address, 0)

    def handle_error(self, request, client_address):
        LOG.debug('Connection from %s ended with an error', client_address,
                  exc_info=True)
