"""Downloading an image from the sources ``meta`` lists.

For each source in turn, until one delivers verified bytes::

    source plugin ──► throttle ──► decompress ──► verify (hash, size)
    (read thread)                  + sparse write  (hash thread)
                                   (caller's thread)

Each arrow is a bounded queue (see :mod:`precache.common.streams`): memory
stays at a few chunks whatever the image's size, and reading,
decompressing (and writing) and hashing run on different CPUs. Hashing
the image (sha512 by default) is the most expensive step; it has a thread
of its own. It is also the only hash computed when it is a strong one: a
source's hash of its artifact (``hash_value``) would be checked at the
same moment, the end of the stream, and adds nothing then; it is checked
only for an image whose sole hash is Glance's md5 ``checksum``.

Nothing a source sends is trusted to be reasonable. While it streams, a
download from one source ends as soon as:

* the bytes received pass the source's declared ``size`` (before they are
  decompressed);
* the image's bytes pass the image's declared ``size`` (a decompression
  bomb is cut off before the write that would pass it: the file never
  grows beyond the declared size, whose space the store checked);
* ``[agent] download_deadline`` passed, or the source delivered less than
  ``min_download_rate`` over a ``min_rate_window`` (see
  :mod:`precache.agent.watchdog`), even while a read is blocked.

A download below ``min_download_rate`` for ``slow_download_grace`` seconds
does not end then: it gives up its download slot and goes on in the
background (see :mod:`precache.agent.pacing` and
:mod:`precache.agent.slots`).

Each is a failure of that source: the next one is tried.
"""

import threading
import time
import zlib

from oslo_log import log as logging
import zstandard

from precache.agent import pacing
from precache.agent import sparse
from precache.agent import throttle
from precache.agent import watchdog as watchdog_mod
from precache.common import exception
from precache.common import plugin
from precache.common import streams
from precache.common import verify

LOG = logging.getLogger(__name__)

NAMESPACE = 'precache.sources'

#: Largest chunk the decompressor hands to the verify-and-write stage.
WRITE_SIZE = 1024 * 1024

# Failures after which the next source is tried: the source or its
# transport failed (TemporaryFailure: SourceFailed), or it delivered bytes
# that are not the image's (VerificationFailed: a hash or size mismatch, a
# corrupt stream). Anything else - this host out of space or past its
# cache cap (HostFailure), a configuration error, a write error - would
# fail the same way with every source: it ends the download at once.
_NEXT_SOURCE_ERRORS = (exception.TemporaryFailure,
                       exception.VerificationFailed, zstandard.ZstdError,
                       zlib.error)


class Downloader(object):
    """Downloads images for the agent; one instance serves all downloads.

    Source plugins are loaded on first use and kept. Every download shares
    the process's bandwidth cap (``[agent] bandwidth_limit``).

    :param conf: the process's ConfigOpts.
    """

    def __init__(self, conf):
        self.conf = conf
        self.throttle = throttle.shared(conf)
        self._plugins = {}
        self._lock = threading.Lock()

    def download(self, image, sources, fileobj, cancel=None, ticket=None):
        """Write ``image``'s verified bytes into ``fileobj``.

        :param image: the :class:`~precache.objects.image.ImageRecord` to
            download;
            its hash and size are what the bytes are verified against.
        :param sources: ``meta['sources']``, tried in order. A source whose
            method has no plugin here is skipped with a warning.
        :param fileobj: a seekable binary file open for writing (a temporary
            file of the store). It is emptied before each source is tried;
            zero blocks are left as holes. Not fsynced: that is the store's
            job.
        :param cancel: an optional :class:`threading.Event`: once set (the
            agent is stopping), the download ends within a fraction of a
            second, whatever the source is doing, with ``Interrupted``.
        :param ticket: the request's :class:`~precache.agent.slots.Ticket`
            holding a download slot, or None; a slow source then parks it
            (see :mod:`precache.agent.pacing`).

        A source fails (and the next is tried) as soon as it sends more
        bytes than its ``size`` or more image bytes than ``image.size``
        (``SizeExceeded``: ``fileobj`` never grows beyond ``image.size``),
        or passes ``[agent] download_deadline`` or falls below
        ``min_download_rate`` (``SourceFailed``).
        :returns: ``{'method', 'locator', 'bytes_received',
            'bytes_written', 'seconds'}``: the source used, the bytes that
            travelled, the image's bytes and the time taken.
        :raises NoVerifiableHash: the image has no hash to verify against.
        :raises AllSourcesFailed: no source delivered the image's bytes;
            the message gives each source's reason.
        :raises HostFailure: this host cannot take the image; no further
            source is tried.
        :raises OSError: writing ``fileobj`` failed (e.g. the disk is
            full); no further source is tried.
        :raises Interrupted: ``cancel`` was set.
        """
        verify.Verifier(image)  # Fail at once when there is no hash.
        reasons = []
        for number, source in enumerate(sources, 1):
            _check_cancel(image, cancel)
            method = source.get('method')
            source_plugin = self._plugin(method)
            if source_plugin is None:
                reasons.append('source %d (%s): no such source plugin here'
                               % (number, method))
                continue
            locator = source_plugin.locator(source)
            LOG.info('Image %s: downloading from source %d/%d, %s %s',
                     image.id, number, len(sources), method, locator)
            try:
                result = self._download(source_plugin, image, source,
                                        fileobj, cancel, ticket)
            except streams.Cancelled:
                LOG.info('Image %s: download from %s %s abandoned, the '
                         'agent is stopping', image.id, method, locator)
                _check_cancel(image, cancel)
                raise
            except _NEXT_SOURCE_ERRORS as exc:
                reason = _reason(exc)
                LOG.warning('Image %s: source %d/%d (%s %s) failed: %s',
                            image.id, number, len(sources), method, locator,
                            reason)
                reasons.append('source %d (%s %s): %s'
                               % (number, method, locator, reason))
                continue
            result['locator'] = locator
            LOG.info('Image %s: %d bytes (%d received) from %s %s in '
                     '%.1fs', image.id, result['bytes_written'],
                     result['bytes_received'], method, locator,
                     result['seconds'])
            return result
        raise exception.AllSourcesFailed(image_id=image.id,
                                         reasons='; '.join(reasons) or
                                         'the request lists no sources')

    def close(self):
        """Close every source plugin loaded (the agent is stopping)."""
        with self._lock:
            plugins, self._plugins = self._plugins, {}
        for method, source_plugin in plugins.items():
            if source_plugin is None:
                continue
            try:
                source_plugin.close()
            except Exception:
                LOG.exception('Closing source plugin %s failed', method)

    def _plugin(self, method):
        """Return the plugin of ``method``; None when there is none."""
        with self._lock:
            if method not in self._plugins:
                try:
                    self._plugins[method] = plugin.load_plugin(
                        NAMESPACE, method, self.conf)
                    self._plugins[method].siblings = self._plugin
                except exception.PluginNotFound as exc:
                    # No option of this agent names the method: the
                    # service's cache request does.
                    LOG.warning('Skipping a source of method %(method)s: '
                                'no source plugin of that name is '
                                'installed on this host (installed: '
                                '%(available)s). Install the package that '
                                'provides it here, or check that this '
                                'agent runs the same precache release as '
                                'precache-service.',
                                {'method': method,
                                 'available': exc.kwargs.get('available')})
                    return None
                except exception.ConfigurationError as exc:
                    LOG.warning('Skipping a source of method %s: %s',
                                method, exc)
                    return None
            return self._plugins[method]

    def _download(self, source_plugin, image, source, fileobj, cancel,
                  ticket=None):
        started = time.monotonic()
        fileobj.seek(0)
        fileobj.truncate(0)
        verifier = verify.Verifier(image)
        writer = sparse.SparseWriter(fileobj, limit=image.size)
        hasher = streams.ThreadedSink(verifier.update, name='precache-hash')
        watchdog = watchdog_mod.Watchdog.from_conf(self.conf, cancel)
        pacer = pacing.Pacer.from_conf(self.conf, watchdog, ticket,
                                       'Image %s' % image.id)
        declared = source.get('size')
        received = 0
        try:
            unpack = source_plugin.decoder(
                image, source, streams.Tee(hasher, writer), WRITE_SIZE)
            # The artifact's hash is checked at the end of the stream,
            # like the image's: only a weak image hash (md5) needs it.
            chunks = self._throttled(
                source_plugin.stream(image, source,
                                     check_hash=not verifier.strong,
                                     progress=watchdog.ahead),
                watchdog)
            with streams.Prefetcher(chunks, name='precache-read',
                                    cancel=pacer) as reader:
                for chunk in reader:
                    received += len(chunk)
                    if declared is not None and received > declared:
                        raise exception.SizeExceeded(
                            image_id=image.id, declared=declared,
                            seen=received,
                            what='the bytes received from the source')
                    unpack.write(chunk)
            unpack.close()
            hasher.close()
        except BaseException as exc:
            hasher.abort()
            if isinstance(exc, sparse.LimitExceeded):
                raise exception.SizeExceeded(
                    image_id=image.id, declared=exc.limit, seen=exc.size,
                    what="the image's (decompressed) bytes") from None
            if isinstance(exc, streams.Cancelled) and pacer.reason:
                raise exception.SourceFailed(
                    image_id=image.id, method=source_plugin.method,
                    locator=source_plugin.locator(source),
                    reason=pacer.reason) from None
            raise
        writer.close()
        verifier.check()
        return {'method': source_plugin.method,
                'bytes_received': received,
                'bytes_written': writer.size,
                'seconds': time.monotonic() - started}

    def _throttled(self, chunks, watchdog):
        try:
            for chunk in chunks:
                watchdog.count(len(chunk))
                with watchdog.paused():
                    self.throttle.consume(len(chunk))
                yield chunk
        finally:
            chunks.close()


def _check_cancel(image, cancel):
    """Raise Interrupted when ``cancel`` is set."""
    if cancel is not None and cancel.is_set():
        raise exception.Interrupted(image_id=image.id,
                                    reason='the agent is stopping')


def _reason(exc):
    """Return why a source failed, without repeating the image id."""
    if isinstance(exc, exception.SourceFailed):
        return exc.kwargs.get('reason', str(exc))
    if isinstance(exc, exception.PrecacheException):
        return str(exc)
    return 'the %s stream is corrupt: %s' % (
        'zstd' if isinstance(exc, zstandard.ZstdError) else 'gzip', exc)
