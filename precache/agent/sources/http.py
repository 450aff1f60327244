"""Downloading an artifact over HTTP(S), through cache proxies.

The route to the origin URL is, in order: each of ``[agent] proxies`` in
the order rendezvous hashing gives this host (see
:mod:`precache.agent.proxies`), then the origin itself when
``[agent] direct_after_proxies`` is set (or when there are no proxies).
A route that cannot be connected to, answers an HTTP error or cannot
resume is left for the next one at once; a transfer that breaks is
resumed on the same route with ``Range: bytes=<received>-`` (guarded by
``If-Range``) up to ``[agent] download_retries`` times. Bytes already
passed on are never sent again: a route that cannot continue where the
last one stopped is skipped.

The URL, and every redirect target, must be under ``[agent]
allowed_origins`` (see :mod:`precache.agent.origins`): redirects are
followed here, up to :data:`MAX_REDIRECTS`, each checked before it is
requested. A URL outside them fails the source without connecting.
"""

import http.client
import re
import time
import urllib.parse

from oslo_log import log as logging
import requests
import urllib3

from precache.agent import origins as origins_mod
from precache.agent import proxies as proxies_mod
from precache.agent.sources import base

LOG = logging.getLogger(__name__)

#: Bytes read from the network at a time.
CHUNK_SIZE = 1024 * 1024
#: Seconds after which the bytes received so far are passed on even if
#: they are fewer than CHUNK_SIZE.
FLUSH_SECONDS = 0.5
#: Redirects followed for one request.
MAX_REDIRECTS = 5

_CONTENT_RANGE = re.compile(r'^bytes (\d+)-(\d+)/(\d+|\*)$')
# "HTTPConnectionPool(host='h', port=1): " and the like, in urllib3 errors.
_POOL_PREFIX = re.compile(r'^(<[^>]*>|\w+\(host=[^)]*\)): ')

# What a broken transfer raises while the body is being read.
_READ_ERRORS = (urllib3.exceptions.HTTPError, requests.RequestException,
                http.client.HTTPException, OSError)


class _RouteFailed(Exception):
    """This route (proxy or direct) cannot deliver; try the next one."""


class _Broken(Exception):
    """The transfer broke; it may be resumed on the same route."""


class _Transfer(object):
    """What one download knows of the artifact so far."""

    def __init__(self, url, name):
        self.url = url
        #: What to call the artifact in messages (no secrets).
        self.name = name
        #: Bytes received and passed on.
        self.received = 0
        #: The artifact's length, once a server said it.
        self.total = None
        #: ETag or Last-Modified of the first response, for If-Range.
        self.validator = None

    @property
    def complete(self):
        return self.total is not None and self.received >= self.total

    def headers(self):
        headers = {'Accept-Encoding': 'identity'}
        if self.received:
            headers['Range'] = 'bytes=%d-' % self.received
            if self.validator:
                headers['If-Range'] = self.validator
        return headers

    def accept(self, response):
        """Check a response continues the transfer; learn from it.

        :raises _RouteFailed: the response cannot be used.
        """
        status = response.status_code
        if not self.received:
            if status != 200:
                raise _RouteFailed('HTTP %d %s' % (status, response.reason))
            self.total = _int_or_none(response.headers.get('Content-Length'))
            self.validator = _validator(response.headers)
            return
        if status == 200:
            raise _RouteFailed(
                'answered HTTP 200 to a request for bytes %d- (no Range '
                'support, or the artifact changed); resuming would repeat '
                'bytes' % self.received)
        if status != 206:
            raise _RouteFailed('HTTP %d %s to a request for bytes %d-'
                               % (status, response.reason, self.received))
        match = _CONTENT_RANGE.match(
            response.headers.get('Content-Range', '').strip())
        if not match or int(match.group(1)) != self.received:
            raise _RouteFailed(
                'answered Content-Range %r to a request for bytes %d-'
                % (response.headers.get('Content-Range'), self.received))
        if match.group(3) != '*':
            total = int(match.group(3))
            if self.total is not None and total != self.total:
                raise _RouteFailed('the artifact is now %d bytes long, it '
                                   'was %d' % (total, self.total))
            self.total = total


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _describe(exc):
    """Return ``exc``'s type and its innermost cause, in one line.

    requests and urllib3 nest errors three deep and repeat the host in
    each; the innermost one says what happened (``Connection refused``).
    """
    outer = type(exc).__name__
    while True:
        inner = getattr(exc, 'reason', None)
        if not isinstance(inner, BaseException):
            inner = next((arg for arg in reversed(exc.args)
                          if isinstance(arg, BaseException)), None)
        if inner is None:
            break
        exc = inner
    text = _POOL_PREFIX.sub('', str(exc)) or type(exc).__name__
    return '%s: %s' % (outer, text)


def _validator(headers):
    """Return a validator usable in If-Range: a strong ETag or a date."""
    etag = headers.get('ETag')
    if etag and not etag.startswith('W/'):
        return etag
    return headers.get('Last-Modified')


class HTTPSource(base.ImageSource):
    """Downloads ``source['url']`` over HTTP(S), via ``[agent] proxies``.

    The proxy environment variables (``http_proxy``, ...) and ``.netrc``
    are ignored: the agent's routes are those of ``[agent]``.
    """

    method = 'http'
    #: Whether ``[agent] proxies`` are used for this method's URLs.
    use_proxies = True

    def routes(self):
        """Return the routes to try, in order, as ``(proxy, proxies)``.

        ``proxy`` is the proxy URL, or ``None`` for a direct connection;
        ``proxies`` is the mapping ``requests`` expects.
        """
        agent = self.conf.agent
        ordered = proxies_mod.order_proxies(
            self.conf.host, agent.proxies if self.use_proxies else [])
        routes = [(proxy, {'http': proxy, 'https': proxy})
                  for proxy in ordered]
        if not routes or agent.direct_after_proxies:
            routes.append((None, {}))
        return routes

    def locator(self, source):
        return proxies_mod.redact(source['url'])

    def iter_chunks(self, image, source):
        transfer = _Transfer(source['url'], self.locator(source))
        origins = origins_mod.Origins.from_conf(self.conf)
        try:
            origins.check(transfer.url, 'the source\'s')
        except origins_mod.Refused as exc:
            raise self.failed(image, source, str(exc))
        failures = []
        with requests.Session() as session:
            session.trust_env = False
            for proxy, proxies in self.routes():
                via = proxies_mod.redact(proxy) if proxy else 'direct'
                try:
                    yield from self._transfer(session, transfer, proxies,
                                              via, origins)
                    return
                except origins_mod.Refused as exc:
                    raise self.failed(image, source, str(exc))
                except _RouteFailed as exc:
                    LOG.warning('Image %s: %s via %s failed: %s',
                                image.id, transfer.name, via, exc)
                    failures.append('via %s: %s' % (via, exc))
        raise self.failed(image, source, '; '.join(failures))

    def _transfer(self, session, transfer, proxies, via, origins):
        """Yield the rest of the artifact through one route.

        :raises _RouteFailed: the route cannot deliver (any more).
        :raises Refused: a redirect leads outside the allowed origins.
        """
        retries = self.conf.agent.download_retries
        broken = 0
        while not transfer.complete:
            response = self._request(session, transfer, proxies, origins)
            try:
                transfer.accept(response)
                yield from self._read(response, transfer)
                if transfer.total is None or transfer.complete:
                    return
                raise _Broken('the connection closed at byte %d of %d'
                              % (transfer.received, transfer.total))
            except _Broken as exc:
                broken += 1
                if broken > retries:
                    raise _RouteFailed('gave up after %d broken '
                                       'attempt(s), last: %s' % (broken, exc))
                LOG.warning('Download of %s via %s broke at byte %d (%s); '
                            'resuming (%d/%d)', transfer.name, via,
                            transfer.received, exc, broken, retries)
            finally:
                response.close()

    def _request(self, session, transfer, proxies, origins):
        """GET the artifact, following redirects allowed by ``origins``.

        :raises Refused: a redirect target is outside ``origins``;
            it was not requested.
        """
        agent = self.conf.agent
        url = transfer.url
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                response = session.get(
                    url, headers=transfer.headers(), proxies=proxies,
                    stream=True, allow_redirects=False,
                    timeout=(agent.connect_timeout, agent.read_timeout))
            except requests.RequestException as exc:
                raise _RouteFailed(_describe(exc))
            target = session.get_redirect_target(response)
            if not target:
                return response
            response.close()
            url = urllib.parse.urljoin(url, target)
            origins.check(url, 'a redirect target\'s')
        raise _RouteFailed('more than %d redirects' % MAX_REDIRECTS)

    @staticmethod
    def _read(response, transfer):
        """Yield the body in chunks of :data:`CHUNK_SIZE` bytes.

        A chunk is yielded early when its bytes took :data:`FLUSH_SECONDS`
        to arrive: a slow source still yields now and then, so a consumer
        that gave up on it (a deadline, the minimum rate) gets this
        generator closed, and the connection with it, at its next byte
        rather than when a whole chunk arrived.
        """
        raw = response.raw
        # Returns what one read of the socket gives (urllib3 >= 2.2).
        read = getattr(raw, 'read1', None) or raw.read
        pending = bytearray()
        since = time.monotonic()
        try:
            while True:
                data = read(CHUNK_SIZE - len(pending), decode_content=False)
                pending += data
                if pending and (not data or len(pending) >= CHUNK_SIZE or
                                time.monotonic() - since >= FLUSH_SECONDS):
                    transfer.received += len(pending)
                    yield bytes(pending)
                    pending.clear()
                    since = time.monotonic()
                if not data:
                    return
        except _READ_ERRORS as exc:
            broken = _Broken(_describe(exc))
        # The bytes before the break are good: a resume starts after them.
        if pending:
            transfer.received += len(pending)
            yield bytes(pending)
        raise broken
