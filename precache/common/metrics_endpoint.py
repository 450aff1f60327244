"""An HTTP endpoint that serves a Prometheus registry at ``/metrics``.

Built on :class:`precache.common.webserver.BackgroundHTTPServer`, so a
slow or greedy client holds little (a deadline for the request head, a
few connections per address). The content type is negotiated as
prometheus_client's own server does (the text format, or OpenMetrics
when the scraper asks for it).
"""

import urllib.parse

from oslo_log import log as logging
from prometheus_client import exposition

from precache.common import webserver

LOG = logging.getLogger(__name__)

#: The path metrics are served at.
PATH = '/metrics'


class MetricsHandler(webserver.RequestHandler):
    """Answers ``GET /metrics`` with the server's registry."""

    protocol_version = 'HTTP/1.1'
    server_version = 'precache-metrics'
    #: Seconds a socket operation may wait once the request head is in.
    timeout = 30

    def do_GET(self):
        if urllib.parse.urlsplit(self.path).path != PATH:
            self.send_error(404)
            return
        encoder, content_type = exposition.choose_encoder(
            self.headers.get('Accept'))
        try:
            body = encoder(self.server.registry)
        except Exception:
            LOG.exception('Could not collect the metrics')
            self.send_error(500)
            return
        self.send_response(200)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def version_string(self):
        return self.server_version

    def log_message(self, format, *args):
        LOG.debug('%s %s', self.address_string(), format % args)


class MetricsEndpoint(webserver.BackgroundHTTPServer):
    """Serves ``registry`` on ``address`` once :meth:`start` is called.

    :param address: ``(host, port)``; port 0 picks a free port.
    :param registry: what is collected at each scrape (a
        :class:`prometheus_client.CollectorRegistry`).
    """

    def __init__(self, address, registry):
        self.registry = registry
        super().__init__(address, MetricsHandler)

    def start(self, name='metrics-endpoint'):
        super().start(name)
        LOG.info('Serving Prometheus metrics on http://%s:%d%s',
                 self.server_address[0], self.port, PATH)
