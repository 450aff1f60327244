"""Downloading an artifact from Swift through a TempURL.

A TempURL is a plain HTTP(S) URL whose query string carries a signature
and an expiry time, so :class:`SwiftSource` is an
:class:`~precache.agent.sources.http.HTTPSource` with resume and
verification, but without ``[agent] proxies``: it always connects to
Swift directly. Swift is a scale-out store already and needs no cache
tree in front of it, the proxies are sized for the ``http`` origin, and a
shared cache would keep serving a TempURL's bytes after the URL expired.
"""

import urllib.parse

from precache.agent.sources import http


class SwiftSource(http.HTTPSource):
    """Downloads a Swift object from the TempURL in ``source['url']``."""

    method = 'swift'
    use_proxies = False

    def locator(self, source):
        """The URL without its query string: the signature stays secret."""
        parts = urllib.parse.urlsplit(super().locator(source))
        return urllib.parse.urlunsplit(parts._replace(query=''))
