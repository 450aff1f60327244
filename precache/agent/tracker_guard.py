"""A local HTTP proxy that checks libtorrent's tracker requests.

libtorrent announces to a torrent's HTTP trackers and follows their
redirects itself; :mod:`precache.agent.origins` checks the trackers named
in a torrent, but not where they redirect. With ``[agent]
allowed_origins`` set, the agent's libtorrent session sends its tracker
requests through a :class:`TrackerGuard` on ``127.0.0.1`` (libtorrent's
``proxy_type = http`` with ``proxy_tracker_connections`` on and
``proxy_peer_connections`` off, so peers still connect directly)::

    libtorrent ──GET http://tracker/announce?...──► guard ──► tracker
               ◄──────── 302 Location: http://elsewhere/ ────┘
               ──GET http://elsewhere/...─────────► guard: 403, no connection

The guard forwards a request only when its URL is under the allowed
origins (read at every request, so SIGHUP applies), never follows a
redirect itself and hands it back to libtorrent, whose next request for
the target comes through the guard again. Answers are bounded
(:data:`MAX_BODY`, :data:`TIMEOUT`); ``CONNECT`` (an ``https`` tracker
tunnelled through the proxy) is refused: its path cannot be checked.

libtorrent's web seeds cannot go through such a proxy without its peer
connections too, so a session with the guard uses no web seeds (see
:mod:`precache.agent.sources.bittorrent`): the plain ``http`` source the
service lists after the ``bittorrent`` one, which the agent checks
itself, serves instead.
"""

import http.client
import urllib.parse

import libtorrent as lt
from oslo_log import log as logging

from precache.agent import origins as origins_mod
from precache.common import webserver

LOG = logging.getLogger(__name__)

#: Largest tracker answer forwarded (bytes).
MAX_BODY = 1024 * 1024
#: Seconds to connect to the tracker and for each read of its answer.
TIMEOUT = 15
#: Request headers passed on to the tracker.
_FORWARDED = ('User-Agent', 'Accept', 'Accept-Encoding')
#: Answer headers passed back to libtorrent.
_RETURNED = ('Content-Type', 'Location', 'Content-Encoding')


class _Handler(webserver.RequestHandler):
    protocol_version = 'HTTP/1.1'
    timeout = TIMEOUT

    def do_GET(self):
        url = self.path
        try:
            self.server.origins().check(url, 'a tracker request\'s')
            scheme, host, port, _path = origins_mod.split(url)
        except (origins_mod.Refused, ValueError) as exc:
            self.server.refused += 1
            LOG.warning('Refused a request of libtorrent: %s', exc)
            self._answer(403, b'refused by precache: %s\n'
                         % str(exc).encode(), {})
            return
        if scheme not in ('http', 'https'):
            self._answer(400, b'not an http URL\n', {})
            return
        try:
            status, headers, body = _fetch(scheme, host, port, url,
                                           self.headers)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            LOG.info('libtorrent\'s tracker request to %s failed: %s',
                     host, exc)
            self._answer(502, b'tracker unreachable\n', {})
            return
        self._answer(status, body, headers)

    def do_CONNECT(self):
        self.server.refused += 1
        LOG.warning('Refused a tunnel to %s for libtorrent: an https '
                    'tracker\'s requests cannot be checked against '
                    '[agent] allowed_origins; use an http tracker',
                    self.path)
        self._answer(403, b'refused by precache\n', {})

    def _answer(self, status, body, headers):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Connection', 'close')
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, fmt, *args):
        LOG.debug('tracker guard: ' + fmt, *args)


def _fetch(scheme, host, port, url, request_headers):
    """GET ``url`` without following redirects; bounded answer."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path or '/'
    if parts.query:
        target += '?' + parts.query
    cls = (http.client.HTTPSConnection if scheme == 'https' else
           http.client.HTTPConnection)
    connection = cls(host, port, timeout=TIMEOUT)
    try:
        headers = {name: request_headers[name] for name in _FORWARDED
                   if request_headers.get(name)}
        connection.request('GET', target, headers=headers)
        response = connection.getresponse()
        body = response.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise ValueError('the answer is larger than %d bytes'
                             % MAX_BODY)
        returned = {name: response.getheader(name) for name in _RETURNED
                    if response.getheader(name)}
        return response.status, returned, body
    finally:
        connection.close()


class TrackerGuard(object):
    """The proxy, on ``127.0.0.1`` and a free port.

    :param origins: a callable returning the current
        :class:`~precache.agent.origins.Origins`.
    """

    def __init__(self, origins):
        self._server = webserver.BackgroundHTTPServer(
            ('127.0.0.1', 0), _Handler, max_per_address=None)
        self._server.origins = origins
        self._server.refused = 0

    @property
    def port(self):
        return self._server.port

    @property
    def refused(self):
        """Requests refused so far."""
        return self._server.refused

    def start(self):
        self._server.start('precache-tracker-guard')
        return self

    def stop(self):
        self._server.stop()

    def session_settings(self):
        """libtorrent settings sending tracker requests through the guard."""
        return {'proxy_type': int(lt.proxy_type_t.http),
                'proxy_hostname': '127.0.0.1',
                'proxy_port': self.port,
                'proxy_hostnames': True,
                'proxy_tracker_connections': True,
                'proxy_peer_connections': False}
