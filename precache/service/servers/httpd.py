"""The built-in web server of the ``http`` image server.

It serves the regular files below a document root, read-only, the way a
cache proxy (Squid) and a resuming download want it: ``GET`` and ``HEAD``,
one byte range per request (``206``/``416``), strong ``ETag``s,
``Last-Modified``, ``Cache-Control: public, max-age=N``, conditional
requests answered with ``304`` and bodies sent with ``sendfile(2)``.

Nothing else is served: no directory listings, no path leaving the
document root (``..``, symbolic links pointing outside) and no hidden
file. Every name starting with a dot is hidden, which covers precache's
temporary files (:data:`precache.common.fileutils.TEMP_PREFIX`) and the sidecar
records of the ``http`` image server.
"""

import datetime
import email.utils
import os
import re
import socket
import stat
import threading
import urllib.parse

from oslo_log import log as logging

from precache.common import webserver
from precache.service import metrics

LOG = logging.getLogger(__name__)

#: Prefix of the names that are never served.
HIDDEN_PREFIX = '.'

#: Seconds a client connection may stay silent before it is closed.
IDLE_TIMEOUT = 60

_RANGE_RE = re.compile(r'^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$', re.I)

#: :func:`parse_range` result for a range beyond the end of the file.
UNSATISFIABLE = 'unsatisfiable'


def is_hidden(name):
    """Tell whether a file or directory name is never served."""
    return name.startswith(HIDDEN_PREFIX)


def resolve(root, url_path):
    """Return the path of the file ``url_path`` names below ``root``.

    :param root: the document root, as returned by ``os.path.realpath``.
    :param url_path: the request target, e.g. ``/img/abc.img.zst?x=1``.
    :returns: a real path inside ``root``, or ``None`` when the target
        leaves the root, names a hidden file or is malformed.
    """
    path = urllib.parse.unquote(urllib.parse.urlsplit(url_path).path)
    parts = [part for part in path.split('/') if part]
    if (not path.startswith('/') or '\x00' in path or not parts or
            any(is_hidden(part) for part in parts)):
        return None
    real = os.path.realpath(os.path.join(root, *parts))
    # A symbolic link may lead outside the root ("..", hidden) or to the
    # root itself ("."), both hidden names.
    relative = os.path.relpath(real, root)
    if any(is_hidden(part) for part in relative.split(os.sep)):
        return None
    return real


def parse_range(header, size):
    """Interpret a ``Range`` header for a file of ``size`` bytes.

    Only a single ``bytes=first-last``, ``bytes=first-`` or ``bytes=-n``
    range is honoured; anything else is ignored, as RFC 9110 allows.

    :returns: ``(first, last)`` (inclusive), ``None`` when the whole file
        is to be sent, or :data:`UNSATISFIABLE`.
    """
    match = _RANGE_RE.match(header or '')
    if not match or match.groups() == ('', ''):
        return None
    first, last = match.groups()
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - suffix), size - 1
    first = int(first)
    if last and int(last) < first:
        return None
    if first >= size:
        return UNSATISFIABLE
    return first, min(int(last or size - 1), size - 1)


class _Validators(object):
    """The ``ETag`` and ``Last-Modified`` of an opened file."""

    def __init__(self, st):
        self.etag = '"%x-%x-%x"' % (st.st_ino, st.st_size, st.st_mtime_ns)
        self.mtime = int(st.st_mtime)
        self.last_modified = email.utils.formatdate(self.mtime, usegmt=True)

    def matches_any(self, if_none_match):
        """Weak comparison against an ``If-None-Match`` value."""
        tags = [tag.strip() for tag in if_none_match.split(',')]
        return '*' in tags or any(
            tag.removeprefix('W/') == self.etag for tag in tags)

    def unmodified_since(self, if_modified_since):
        """Tell whether the file is not newer than a client's date."""
        try:
            since = email.utils.parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:  # "-0000": UTC as well
            since = since.replace(tzinfo=datetime.timezone.utc)
        return self.mtime <= since.timestamp()

    def same_version(self, if_range):
        """Strong comparison against an ``If-Range`` entity tag or date."""
        return if_range.strip() in (self.etag, self.last_modified)


class RequestHandler(webserver.RequestHandler):
    """Answers ``GET`` and ``HEAD`` from the server's document root.

    A connection takes one of the server's slots once its first request
    head is in, and keeps it until it closes: clients that are slow to
    send their head (see :mod:`precache.common.webserver`) hold no slot.
    """

    protocol_version = 'HTTP/1.1'
    server_version = 'precache-httpd'
    timeout = IDLE_TIMEOUT
    error_content_type = 'text/plain'
    error_message_format = '%(code)d %(message)s\n'

    _slot = False

    def parse_request(self):
        if not super().parse_request():
            return False
        if not self._slot:
            self._slot = self.server.take_slot()
            if not self._slot:  # stopping
                self.close_connection = True
                return False
        return True

    def finish(self):
        try:
            super().finish()
        finally:
            if self._slot:
                self._slot = False
                self.server.release_slot()

    def do_GET(self):
        self._respond(send_body=True)

    def do_HEAD(self):
        self._respond(send_body=False)

    def version_string(self):
        return self.server_version

    def log_message(self, format, *args):
        LOG.debug('%s %s', self.address_string(), format % args)

    def _respond(self, send_body):
        fileobj = self._open()
        if fileobj is None:
            self.send_error(404)
            return
        with fileobj:
            st = os.fstat(fileobj.fileno())
            first, count = self._send_head(_Validators(st), st.st_size)
            if send_body and count:
                sent = self.connection.sendfile(fileobj, first, count)
                metrics.SERVED_BYTES.labels('http').inc(sent)

    def _send_head(self, validators, size):
        """Send the status and headers; return the body's offset, length."""
        if self._not_modified(validators):
            self._send_headers(304, validators)
            return 0, 0
        span = self._requested_range(validators, size)
        if span == UNSATISFIABLE:
            self._send_headers(416, validators, length=0,
                               content_range='bytes */%d' % size)
            return 0, 0
        if span is None:
            self._send_headers(200, validators, length=size)
            return 0, size
        first, last = span
        self._send_headers(206, validators, length=last - first + 1,
                           content_range='bytes %d-%d/%d'
                           % (first, last, size))
        return first, last - first + 1

    def _open(self):
        """Open the requested regular file, or return ``None``."""
        path = resolve(self.server.root, self.path)
        if path is None:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return os.fdopen(fd, 'rb')

    def _not_modified(self, validators):
        if_none_match = self.headers.get('If-None-Match')
        if if_none_match is not None:
            return validators.matches_any(if_none_match)
        if_modified_since = self.headers.get('If-Modified-Since')
        return (if_modified_since is not None and
                validators.unmodified_since(if_modified_since))

    def _requested_range(self, validators, size):
        if_range = self.headers.get('If-Range')
        if if_range is not None and not validators.same_version(if_range):
            return None
        return parse_range(self.headers.get('Range'), size)

    def _send_headers(self, code, validators, length=None,
                      content_range=None):
        self.send_response(code)
        self.send_header('ETag', validators.etag)
        self.send_header('Last-Modified', validators.last_modified)
        self.send_header('Cache-Control', self.server.cache_control)
        self.send_header('Accept-Ranges', 'bytes')
        if content_range:
            self.send_header('Content-Range', content_range)
        if length is not None:
            self.send_header('Content-Type', 'application/octet-stream')
            self.send_header('Content-Length', str(length))
        self.end_headers()


class Server(webserver.BackgroundHTTPServer):
    """A threaded static file server with a cap on concurrent clients.

    :param address: ``(host, port)`` to bind; port 0 picks a free port.
    :param root: the document root.
    :param max_age: seconds put in ``Cache-Control: public, max-age=N``.
    :param max_connections: client connections served at once; further
        connections wait, once their request head is in, until one ends.
    :param head_timeout: seconds a client has for a request head.
    :param max_per_address: connections one client address may hold.
    """

    request_queue_size = 128

    def __init__(self, address, root, max_age, max_connections,
                 head_timeout=webserver.HEAD_TIMEOUT,
                 max_per_address=webserver.MAX_CONNECTIONS_PER_ADDRESS):
        self.root = os.path.realpath(root)
        self.cache_control = 'public, max-age=%d' % max_age
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stopping = threading.Event()
        self._connections = set()
        self._lock = threading.Lock()
        super().__init__(address, RequestHandler, head_timeout,
                         max_per_address)

    def take_slot(self):
        """Wait for a free slot; return False if the server stops first."""
        while not self._slots.acquire(timeout=webserver.POLL_INTERVAL):
            if self._stopping.is_set():
                return False
        return True

    def release_slot(self):
        self._slots.release()

    def process_request_thread(self, request, client_address):
        with self._lock:
            self._connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._connections.discard(request)

    def shutdown(self):
        """Stop serving and cut the connections of clients still served."""
        self._stopping.set()
        super().shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
