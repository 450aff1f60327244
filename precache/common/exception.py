"""precache's exceptions.

Every error an operator must tell apart has its own class. All derive from
:class:`PrecacheException`, whose ``msg_fmt`` is filled from the keyword
arguments given when the exception is raised, so a message always names what
failed (the image, the host, the plugin) and, where it can, what to do.
"""

from oslo_log import log as logging

LOG = logging.getLogger(__name__)


class PrecacheException(Exception):
    """Base class of all precache errors.

    Subclasses set ``msg_fmt``; ``code`` is a short machine-readable reason
    used in reports sent from agents to the service.
    """

    msg_fmt = 'An unknown error occurred.'
    code = 'error'

    def __init__(self, message=None, **kwargs):
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError):
                LOG.exception('Exception message format error for %s, '
                              'kwargs %s', self.__class__.__name__, kwargs)
                message = self.msg_fmt
        self.message = message
        super().__init__(message)


class ConfigurationError(PrecacheException):
    msg_fmt = 'Invalid configuration: %(reason)s'
    code = 'config'


class PluginNotFound(ConfigurationError):
    msg_fmt = ('Plugin %(name)r is not installed in entry point namespace '
               '%(namespace)s (installed: %(available)s). Check the '
               '%(option)s option and the installed packages.')


class PluginLoadFailed(ConfigurationError):
    msg_fmt = ('Plugin %(name)r of entry point namespace %(namespace)s '
               'failed to load: %(reason)s')


class ImageNotFound(PrecacheException):
    msg_fmt = 'Image %(image_id)s was not found: %(reason)s'
    code = 'not_found'


class ImageNotActive(PrecacheException):
    msg_fmt = 'Image %(image_id)s is not active (status %(status)s)'
    code = 'not_active'


class HashMismatch(PrecacheException):
    msg_fmt = ('Image %(image_id)s: %(algo)s of the downloaded bytes is '
               '%(actual)s, expected %(expected)s; the download was '
               'discarded')
    code = 'hash_mismatch'


class SizeMismatch(PrecacheException):
    msg_fmt = ('Image %(image_id)s: received %(actual)d bytes, expected '
               '%(expected)d; the download was discarded')
    code = 'size_mismatch'


class NoVerifiableHash(PrecacheException):
    msg_fmt = ('Image %(image_id)s has neither os_hash_value nor checksum; '
               'refusing to cache bytes that cannot be verified')
    code = 'no_hash'


class FetchFailed(PrecacheException):
    msg_fmt = 'Fetching image %(image_id)s failed: %(reason)s'
    code = 'fetch_failed'


class ServeFailed(PrecacheException):
    msg_fmt = 'Serving image %(image_id)s failed: %(reason)s'
    code = 'serve_failed'


class InvalidMeta(PrecacheException):
    msg_fmt = 'Invalid cache request meta: %(reason)s'
    code = 'invalid_meta'


class SourceFailed(PrecacheException):
    msg_fmt = ('Image %(image_id)s: source %(method)s (%(locator)s) failed: '
               '%(reason)s')
    code = 'source_failed'


class AllSourcesFailed(PrecacheException):
    msg_fmt = 'Image %(image_id)s: every source failed: %(reasons)s'
    code = 'download_failed'


class UnsafeImage(PrecacheException):
    msg_fmt = ('Image %(image_id)s refused by the format inspection: '
               '%(reason)s')
    code = 'unsafe_image'


class InsufficientDiskSpace(PrecacheException):
    msg_fmt = ('Not enough disk space in %(path)s for image %(image_id)s: '
               'need %(needed)d bytes plus a reserve of %(reserve)d, '
               '%(free)d free')
    code = 'no_space'


class CacheSizeExceeded(PrecacheException):
    msg_fmt = ('Caching image %(image_id)s (%(needed)d bytes) would exceed '
               'the cache size cap of %(cap)d bytes (%(used)d used)')
    code = 'cache_full'


class ConversionFailed(PrecacheException):
    msg_fmt = 'Converting image %(image_id)s to raw failed: %(reason)s'
    code = 'conversion_failed'


class StoreFailed(PrecacheException):
    msg_fmt = 'Storing image %(image_id)s failed: %(reason)s'
    code = 'store_failed'


class UntrustedMeta(InvalidMeta):
    """A meta whose signature does not prove precache-service sent it.

    Its subclasses are what agents report (``code``) when they refuse a
    cast or a ``desired`` entry before any network or disk work.
    """

    msg_fmt = 'Refused an unverified cache request: %(reason)s'
    code = 'untrusted'


class Unsigned(UntrustedMeta):
    msg_fmt = ('Refused an unsigned cache request for image %(image_id)s: '
               'every meta must carry the service\'s signature')
    code = 'unsigned'


class BadSignature(UntrustedMeta):
    msg_fmt = ('Refused a cache request for image %(image_id)s: its '
               'signature (key %(key_id)s) does not match its content: '
               '%(reason)s')
    code = 'bad_signature'


class UnknownKey(UntrustedMeta):
    msg_fmt = ('Refused a cache request for image %(image_id)s signed with '
               'key %(key_id)s, which is not in [signing] public_key_files '
               '(known keys: %(known)s)')
    code = 'unknown_key'


class InvalidImageId(InvalidMeta):
    msg_fmt = ('Refused a cache request for image %(image_id)s: an image id '
               'is 1 to %(limit)d printable characters without "/" or '
               '"\\"')
    code = 'invalid_image_id'
