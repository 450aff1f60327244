"""The ImageSource plugin interface (namespace ``precache.sources``)."""

import abc
import hashlib

from oslo_log import log as logging

from precache.common import compression
from precache.common import exception
from precache.common import plugin

LOG = logging.getLogger(__name__)

#: Algorithm of a source's ``hash_value`` when it names none.
DEFAULT_HASH_ALGO = 'sha256'


class ImageSource(plugin.Plugin, metaclass=abc.ABCMeta):
    """Streams an image's artifact from one kind of source to the agent.

    The agent's :class:`~precache.agent.download.Downloader` picks the
    plugin whose entry point name is a source's ``method`` and calls
    :meth:`stream`. A plugin implements :meth:`iter_chunks`; the base
    class checks what was transferred against the source's ``size`` and
    ``hash_value`` and turns every failure into
    :class:`~precache.common.exception.SourceFailed`. Decompression and the
    verification of the image's own hash are the Downloader's job.

    One instance serves every download of the agent, possibly several at
    once from different threads: keep per-download state in local
    variables, not in attributes.

    :param conf: the process's ConfigOpts.
    """

    #: The ``method`` of the sources this plugin handles (its entry point
    #: name).
    method = None

    #: True when :meth:`iter_chunks` takes a ``progress`` keyword: a
    #: function the plugin calls (from any thread, as often as it likes)
    #: with the artifact's bytes it received so far, yielded or not. A
    #: plugin that receives bytes out of order (a swarm's pieces) sets it,
    #: so that the agent's ``[agent] min_download_rate`` counts what
    #: arrives, not only the in-order prefix it can yield.
    receives_ahead = False

    #: Set by the Downloader that loaded this plugin: a function that
    #: returns the Downloader's plugin of another method (or None when
    #: there is none). A plugin that downloads through another one's
    #: transport (``delta``) uses it through :meth:`sibling`, so both
    #: share one session, seeding pool and proxy order.
    siblings = None

    def sibling(self, method):
        """Return the Downloader's plugin of ``method``, or None."""
        return self.siblings(method) if self.siblings is not None else None

    @abc.abstractmethod
    def iter_chunks(self, image, source):
        """Yield the artifact's bytes in order, as they travel.

        The bytes are those of the artifact described by ``source``: still
        compressed with ``source['compression']``. Chunks should be large
        (a MiB or more) for speed, and the artifact must never be held in
        memory whole. Retries, resumes and fail-over between mirrors or
        proxies belong here: when this generator ends, every byte must
        have been yielded exactly once.

        :param image: the :class:`~precache.objects.image.ImageRecord` being
            downloaded.
        :param source: one entry of ``meta['sources']`` (see
            :mod:`precache.objects.meta`) whose ``method`` is :attr:`method`.
        :raises SourceFailed: the source cannot deliver the artifact; the
            reason must say precisely why (which URL or proxy, which HTTP
            status, after how many attempts) so an operator can act.
        """

    def close(self):
        """Release what the plugin holds (sessions, seeding, files).

        Called once when the agent stops, after the last download ended.
        The default does nothing.
        """

    def locator(self, source):
        """Return what to call ``source`` in messages (e.g. its URL).

        Must not reveal secrets. The default is ``source['url']`` or the
        method's name.
        """
        return source.get('url') or self.method

    def decoder(self, image, source, sink, write_size):
        """Return the writer that turns the artifact into the image's bytes.

        The Downloader writes the artifact's bytes (as :meth:`stream`
        yields them) into it and closes it; it writes the image's bytes
        in order into ``sink`` in pieces of at most ``write_size`` bytes.
        The default undoes ``source['compression']``.
        """
        return compression.decompressor(
            source.get('compression') or compression.NONE, sink, write_size)

    def failed(self, image, source, reason):
        """Return a :class:`.exception.SourceFailed` to raise."""
        return exception.SourceFailed(image_id=image.id, method=self.method,
                                      locator=self.locator(source),
                                      reason=reason)

    def stream(self, image, source, check_hash=True, progress=None):
        """Yield the artifact's bytes and check them against ``source``.

        Wraps :meth:`iter_chunks`: counts and hashes what travels and, at
        the end, compares it with ``source['size']`` and
        ``source['hash_value']`` (``hash_algo``, sha256 by default) when
        the source gives them.

        :param check_hash: False leaves ``hash_value`` unchecked (and the
            artifact unhashed): the Downloader passes it when the image's
            own bytes are checked against a strong hash, which the
            artifact's hash, checked at the same moment (the end of the
            stream), would only repeat.
        :param progress: passed on to :meth:`iter_chunks` when the plugin
            :attr:`receives_ahead`; ignored otherwise.
        :raises SourceFailed: :meth:`iter_chunks` failed, or the bytes are
            not those the source announced.
        """
        size = source.get('size')
        expected = source.get('hash_value') if check_hash else None
        algo = source.get('hash_algo') or DEFAULT_HASH_ALGO
        digest = None
        if expected:
            try:
                digest = hashlib.new(algo)
            except ValueError:
                raise self.failed(image, source,
                                  'hash_algo %r is not supported' % algo)
        received = 0
        if progress is not None and self.receives_ahead:
            chunks = self.iter_chunks(image, source, progress=progress)
        else:
            chunks = self.iter_chunks(image, source)
        try:
            for chunk in chunks:
                received += len(chunk)
                if digest is not None:
                    digest.update(chunk)
                yield chunk
        except exception.SourceFailed:
            raise
        except Exception as exc:
            LOG.debug('Source %s of image %s failed', self.method, image.id,
                      exc_info=True)
            raise self.failed(image, source, '%s: %s'
                              % (type(exc).__name__, exc)) from exc
        if size is not None and received != size:
            raise self.failed(image, source,
                              'received %d bytes, the source announced %d'
                              % (received, size))
        if digest is not None:
            actual = digest.hexdigest()
            if actual.lower() != expected.lower():
                raise self.failed(image, source,
                                  '%s of the transferred bytes is %s, the '
                                  'source announced %s'
                                  % (algo, actual, expected))
