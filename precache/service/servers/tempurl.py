"""Swift TempURLs whose expiry moves in steps, so metas stay stable.

The service serves every image at every run. A TempURL signed with
"now + lifetime" would differ at each run and make every meta look new;
instead the expiry is the end of a fixed window::

    window  = lifetime - min_remaining
    expires = (floor(now / window) + 1) * window + min_remaining

so that, at any time, the URL signed then is valid for more than
``min_remaining`` and at most ``lifetime`` seconds, and stays the same
URL for ``window`` seconds. Every service instance computes the same
expiry (and, with the same key, the same URL): a failover does not
change the metas either.
"""

import time
import urllib.parse

from swiftclient import utils as swift_utils

#: The HMAC digest of the signatures (Swift accepts sha1, sha256, sha512).
DIGEST = 'sha256'


def expiry(lifetime, min_remaining, now=None):
    """Return the Unix time at which a TempURL signed now expires.

    :param lifetime: the longest validity, in seconds.
    :param min_remaining: the shortest validity, in seconds; less than
        ``lifetime``.
    """
    now = int(time.time() if now is None else now)
    window = lifetime - min_remaining
    return (now // window + 1) * window + min_remaining


def sign(storage_url, container, name, key, expires):
    """Return the TempURL of a GET of one object.

    :param storage_url: the account's URL as agents reach it, e.g.
        ``https://swift.example.org/v1/AUTH_0123``.
    :param container: the container's name.
    :param name: the object's name.
    :param key: the account's or container's TempURL key.
    :param expires: the Unix time the URL expires at.
    """
    parts = urllib.parse.urlsplit(storage_url.rstrip('/'))
    path = '%s/%s/%s' % (urllib.parse.unquote(parts.path), container, name)
    signed = swift_utils.generate_temp_url(path, expires, key, 'GET',
                                           absolute=True, digest=DIGEST)
    query = signed.split('?', 1)[1]
    return urllib.parse.urlunsplit(
        parts._replace(path=urllib.parse.quote(path), query=query))


def without_signature(url):
    """Return ``url`` without its query string (signature and expiry)."""
    return urllib.parse.urlunsplit(
        urllib.parse.urlsplit(url)._replace(query=''))
