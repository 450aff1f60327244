"""Which URLs an agent may connect to for an image's bytes.

``[agent] allowed_origins`` lists URL prefixes. Every URL the agent would
connect to for image bytes - an ``http`` or ``swift`` source's URL, each
redirect target, a torrent's web seeds and trackers, its ``inject_url``
and its ``peers`` - is checked against them *before* connecting. An empty
list allows everything. The signature on ``meta`` already says the
service sent it; this is defence in depth against a service (or signing
key) that was compromised, or a redirect that points elsewhere.

How a URL is compared with a prefix:

* scheme and host are compared lowercased and exactly (a prefix
  ``http://origin.example.org`` never allows
  ``http://origin.example.org.evil.com/``);
* the port is compared after filling in the scheme's default (80 for
  ``http``, 443 for ``https``), so ``http://Origin:80/x`` matches
  ``http://origin/``; a prefix without a port, of a scheme without a
  default one, allows every port;
* the prefix's path must end at a ``/`` boundary of the URL's path
  (``http://o/images`` allows ``/images`` and ``/images/x``, not
  ``/images-old``), after ``.`` and ``..`` segments are resolved; query
  and fragment are ignored.

BitTorrent peers (``host:port``) are compared as
``bittorrent://host:port/``. Proxies are the agent's own configuration
and are not checked; neither is the ``glance`` source, which talks to the
agent's own ``[glance]`` endpoint.
"""

import urllib.parse

from precache.common import exception

#: Ports URLs of these schemes use when they name none.
DEFAULT_PORTS = {'http': 80, 'https': 443}
#: The scheme BitTorrent peers are compared as.
PEER_SCHEME = 'bittorrent'
OPTION = '[agent] allowed_origins'


class Refused(Exception):
    """A URL is not under any allowed origin; the message says which host."""


def _remove_dot_segments(path):
    """Resolve ``.`` and ``..`` in ``path`` (RFC 3986 section 5.2.4)."""
    output = []
    for segment in path.split('/')[1:]:
        if segment == '..':
            if output:
                output.pop()
        elif segment != '.':
            output.append(segment)
    if path.endswith(('/.', '/..')):
        output.append('')
    return '/' + '/'.join(output)


def split(url):
    """Return ``(scheme, host, port, path)`` of ``url``, normalised.

    :raises ValueError: ``url`` has no scheme or host, or a bad port.
    """
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = parts.hostname  # Lowercased, without brackets or user info.
    if not scheme or not host:
        raise ValueError('%r is not an absolute URL with a host' % url)
    port = parts.port  # ValueError when out of range or not a number.
    if port is None:
        port = DEFAULT_PORTS.get(scheme)
    path = _remove_dot_segments(parts.path or '/')
    return scheme, host, port, path


def peer_url(peer):
    """Return the URL a ``host:port`` peer is compared as."""
    return '%s://%s/' % (PEER_SCHEME, peer)


class Origins(object):
    """A list of allowed URL prefixes.

    :param prefixes: URL prefixes; empty allows every URL.
    :raises ValueError: a prefix is not an absolute URL with a host.
    """

    def __init__(self, prefixes):
        self.prefixes = [split(prefix) for prefix in prefixes if prefix]

    @classmethod
    def from_conf(cls, conf):
        """Return the origins of ``conf.agent.allowed_origins``.

        :raises ConfigurationError: a prefix is not an absolute URL.
        """
        try:
            return cls(conf.agent.allowed_origins)
        except ValueError as exc:
            raise exception.ConfigurationError(
                reason='%s: %s' % (OPTION, exc))

    @property
    def unrestricted(self):
        return not self.prefixes

    def allows(self, url):
        """Whether ``url`` is under an allowed prefix (or none are set)."""
        if self.unrestricted:
            return True
        try:
            scheme, host, port, path = split(url)
        except ValueError:
            return False
        return any(_under(scheme, host, port, path, prefix)
                   for prefix in self.prefixes)

    def check(self, url, what='URL'):
        """Raise :class:`Refused` unless ``url`` is allowed.

        :param what: what ``url`` is, for the message (``redirect
            target``, ``web seed``, ...).
        """
        if self.allows(url):
            return
        try:
            scheme, host, port, _path = split(url)
            origin = '%s://%s%s/' % (scheme, _netloc(host),
                                     '' if port is None else ':%d' % port)
        except ValueError:
            host = origin = 'an unparsable URL'
        raise Refused('%s host %s (%s) is not in %s; add a prefix of it '
                      'there if this agent should download from it'
                      % (what, host, origin, OPTION))


def _netloc(host):
    return '[%s]' % host if ':' in host else host


def _under(scheme, host, port, path, prefix):
    p_scheme, p_host, p_port, p_path = prefix
    if (scheme, host) != (p_scheme, p_host):
        return False
    if p_port is not None and port != p_port:
        return False
    if p_path.endswith('/'):
        return path.startswith(p_path)
    return path == p_path or path.startswith(p_path + '/')
