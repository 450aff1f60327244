"""precache's exceptions.

Every error an operator must tell apart has its own class. All derive from
:class:`PrecacheException`, whose ``msg_fmt`` is filled from the keyword
arguments given when the exception is raised, so a message always names what
failed (the image, the host, the plugin) and, where it can, what to do.

Callers branch on the category a class derives from, never on class-name
strings:

* :class:`NotFound` - the thing asked for does not exist (the CLI's
  "unknown image").
* :class:`Invalid` - a request, configuration or image that can never
  succeed as it is; :class:`VerificationFailed` narrows it to bytes that are
  not the image's (another source may have the right ones).
* :class:`Conflict` - the thing exists but is not in a state that allows
  the operation (yet).
* :class:`TemporaryFailure` - a source, transport or remote service failed;
  retrying (later, or elsewhere) may succeed.
* :class:`HostFailure` - this host cannot store the image (disk space, the
  cache cap, its file system, qemu-img); another source would not help.

The service's RPC endpoints raise these across oslo.messaging: this module
is in :data:`precache.common.rpc.ALLOWED_EXMODS`, so a caller gets the
class back, not an ``oslo_messaging.RemoteError``.
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


# Categories: raise their subclasses, catch them. -----------------------


class NotFound(PrecacheException):
    """The image (or other thing) asked for does not exist."""


class Invalid(PrecacheException):
    """A request, configuration or image that cannot succeed as it is.

    Retrying, here or with another source, gives the same answer; the
    message says what to change.
    """


class VerificationFailed(Invalid):
    """The bytes received are not the image's: discarded, never stored.

    Invalid as received from one source: another source of the same image
    may deliver the right bytes.
    """


class Conflict(PrecacheException):
    """The thing exists but its state does not allow the operation now."""


class TemporaryFailure(PrecacheException):
    """A source, transport or remote service failed.

    Retrying later, or elsewhere (the next source), may succeed.
    """


class HostFailure(PrecacheException):
    """This host cannot store the image; another source would not help.

    Disk space, the cache size cap, the store's file system or qemu-img:
    the operator of the host must act.
    """


# Configuration ----------------------------------------------------------


class ConfigurationError(Invalid):
    msg_fmt = 'Invalid configuration: %(reason)s'
    code = 'config'


class PluginNotFound(ConfigurationError):
    msg_fmt = ('Plugin %(name)r is not installed in entry point namespace '
               '%(namespace)s (installed: %(available)s). Check the '
               '%(option)s option and the installed packages.')


class PluginLoadFailed(ConfigurationError):
    msg_fmt = ('Plugin %(name)r of entry point namespace %(namespace)s '
               'failed to load: %(reason)s')


class ToolMissing(ConfigurationError):
    msg_fmt = ('%(tool)s is not installed on this host: %(install)s')
    code = 'tool_missing'


class RPCVersionPinned(ConfigurationError):
    msg_fmt = ('Cannot send %(method)s to precache-%(peer)s: it needs '
               'version %(version)s of the RPC API and [upgrade_levels] '
               '%(peer)s caps it at %(cap)s. Unset that option once every '
               'precache-%(peer)s runs a release that has version '
               '%(version)s.')
    code = 'version_pinned'


# Images -----------------------------------------------------------------


class ImageNotFound(NotFound):
    msg_fmt = 'Image %(image_id)s was not found: %(reason)s'
    code = 'not_found'


class ImageNotActive(Conflict):
    msg_fmt = 'Image %(image_id)s is not active (status %(status)s)'
    code = 'not_active'


class HashMismatch(VerificationFailed):
    msg_fmt = ('Image %(image_id)s: %(algo)s of the downloaded bytes is '
               '%(actual)s, expected %(expected)s; the download was '
               'discarded')
    code = 'hash_mismatch'


class SizeMismatch(VerificationFailed):
    msg_fmt = ('Image %(image_id)s: received %(actual)d bytes, expected '
               '%(expected)d; the download was discarded')
    code = 'size_mismatch'


class SizeExceeded(VerificationFailed):
    """More bytes than declared: the download stopped at once.

    A hostile or broken source (a decompression bomb, an endless
    stream) is cut off as soon as it passes the declared size, not after
    it filled the disk.
    """

    msg_fmt = ('Image %(image_id)s: %(what)s passed the %(declared)d bytes '
               'declared (%(seen)d seen); the download was stopped')
    code = 'size_exceeded'


class CorruptStream(VerificationFailed):
    msg_fmt = 'The %(compression)s stream is corrupt: %(reason)s'
    code = 'corrupt_stream'


class NoVerifiableHash(Invalid):
    msg_fmt = ('Image %(image_id)s has neither os_hash_value nor checksum; '
               'refusing to cache bytes that cannot be verified')
    code = 'no_hash'


class FetchFailed(TemporaryFailure):
    msg_fmt = 'Fetching image %(image_id)s failed: %(reason)s'
    code = 'fetch_failed'


class BaseUnusable(VerificationFailed):
    msg_fmt = ('Image %(image_id)s: the local copy of base image '
               '%(base_id)s cannot be used to assemble it from a delta: '
               '%(reason)s')
    code = 'base_unusable'


class ServeFailed(TemporaryFailure):
    msg_fmt = 'Serving image %(image_id)s failed: %(reason)s'
    code = 'serve_failed'


class InvalidMeta(Invalid):
    msg_fmt = 'Invalid cache request meta: %(reason)s'
    code = 'invalid_meta'


class SourceFailed(TemporaryFailure):
    msg_fmt = ('Image %(image_id)s: source %(method)s (%(locator)s) failed: '
               '%(reason)s')
    code = 'source_failed'


class AllSourcesFailed(TemporaryFailure):
    msg_fmt = 'Image %(image_id)s: every source failed: %(reasons)s'
    code = 'download_failed'


class UnsafeImage(Invalid):
    msg_fmt = ('Image %(image_id)s refused by the format inspection: '
               '%(reason)s')
    code = 'unsafe_image'


class InsufficientDiskSpace(HostFailure):
    msg_fmt = ('Not enough disk space in %(path)s for image %(image_id)s: '
               'need %(needed)d bytes plus a reserve of %(reserve)d, '
               '%(free)d free')
    code = 'no_space'


class CacheSizeExceeded(HostFailure):
    msg_fmt = ('Caching image %(image_id)s (%(needed)d bytes) would exceed '
               'the cache size cap of %(cap)d bytes (%(used)d used)')
    code = 'cache_full'


class ConversionFailed(HostFailure):
    msg_fmt = 'Converting image %(image_id)s to raw failed: %(reason)s'
    code = 'conversion_failed'


class Interrupted(TemporaryFailure):
    """The daemon is stopping: the work was abandoned and cleaned up.

    Neither a fault of the image nor of the host: nothing is retried by
    this process; the service's convergence sends the request again to the
    restarted daemon.
    """

    msg_fmt = 'Image %(image_id)s: abandoned, %(reason)s'
    code = 'interrupted'


class AgentBusy(TemporaryFailure):
    """The agent has as many requests as it may hold: ask again later.

    Neither a fault of the image nor of the host; the service sends the
    request again after ``[service] busy_retry_delay``, without counting it
    as a failed attempt.
    """

    msg_fmt = ('Image %(image_id)s: not cached now, this agent is busy with '
               '%(requests)d request(s) (at most [agent] '
               'max_concurrent_downloads running plus max_queued_requests '
               'waiting); it will be asked again')
    code = 'busy'


class StoreFailed(HostFailure):
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
