"""A threaded HTTP server that serves in a background thread of its own.

The base of precache's built-in servers (the ``http`` image server's web
server, the BitTorrent tracker): it binds an IPv4 or IPv6 address, serves
each client in a daemon thread, and is started and stopped as a unit.
"""

import http.server
import socket
import threading

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

#: Seconds between two checks for a stop request (``serve_forever``).
POLL_INTERVAL = 0.1


class BackgroundHTTPServer(http.server.ThreadingHTTPServer):
    """Binds ``address`` at once; :meth:`start` serves, :meth:`stop` ends.

    :param address: ``(host, port)`` to bind; port 0 picks a free port.
    :param handler: the request handler class.
    """

    daemon_threads = True

    def __init__(self, address, handler):
        if ':' in address[0]:
            self.address_family = socket.AF_INET6
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

    def handle_error(self, request, client_address):
        LOG.debug('Connection from %s ended with an error', client_address,
                  exc_info=True)
