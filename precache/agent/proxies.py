"""Which HTTP cache proxy a host uses: rendezvous (HRW) hashing.

Every host ranks the configured proxies by a score computed from its own
name and each proxy's URL, and tries them best first. The ranking:

* is stable: the same host always gets the same order, whatever order the
  proxies are listed in;
* spreads hosts evenly: each proxy is the first choice of about
  ``1 / len(proxies)`` of the hosts;
* reshuffles minimally: adding a proxy moves only the hosts that now rank
  it first (about ``1 / (len(proxies) + 1)`` of them), removing one moves
  only the hosts that ranked it first. A cache tree stays warm.
"""

import hashlib
import urllib.parse


def score(host, proxy):
    """Return the rendezvous score of ``proxy`` for ``host``.

    :param host: the host's name (``[DEFAULT] host``).
    :param proxy: the proxy's URL.
    :returns: a 64-bit integer; the larger, the more preferred.
    """
    key = ('%s\n%s' % (host, proxy)).encode('utf-8')
    return int.from_bytes(hashlib.sha256(key).digest()[:8], 'big')


def order_proxies(host, proxies):
    """Return ``proxies`` in the order ``host`` should try them.

    Blank entries and duplicates are dropped.

    :param host: the host's name (``[DEFAULT] host``).
    :param proxies: proxy URLs, in any order.
    :returns: a new list, the host's preferred proxy first.
    """
    unique = {p.strip() for p in proxies if p and p.strip()}
    return sorted(unique, key=lambda p: (score(host, p), p), reverse=True)


def redact(url):
    """Return ``url`` without user name and password, for log messages."""
    parts = urllib.parse.urlsplit(url)
    if '@' not in parts.netloc:
        return url
    netloc = parts.netloc.rpartition('@')[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
