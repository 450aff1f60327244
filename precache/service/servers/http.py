"""The ``http`` image server: compressed artifacts over plain HTTP.

Each image is compressed once into ``document_root`` as
``<image id>/<first 16 hex digits of the image's hash>.img<suffix>``. The
name changes whenever the image's bytes change, so a cache proxy in front
of the origin never serves stale bytes under a current URL. A hidden
sidecar record (``.<artifact name>.json``) keeps the artifact's size and
sha256, so an unchanged image costs one ``stat`` per run.

Extra artifacts of an image (a delta, see
:mod:`precache.service.servers.base`) are written beside its full
artifact, under names that start with the same hash prefix, and served
the same way; they are kept while that version of the image is served.

The artifacts are served by the built-in server
(:mod:`precache.service.servers.httpd`) or by any web server pointed at
``document_root``.
"""

import hashlib
import os
import shutil
import socket
import time
import urllib.parse

from oslo_config import cfg
from oslo_log import log as logging

from precache.common import compression
from precache.common import exception
from precache.common import fileutils
from precache.common import streams
from precache.common import webserver
from precache.service.servers import artifacts
from precache.service.servers import base
from precache.service.servers import httpd

LOG = logging.getLogger(__name__)

GROUP = 'http_server'

#: Bytes read from the staged image at a time.
CHUNK_SIZE = 8 * 1024 * 1024
#: Compressed chunks waiting for the writer thread, at most.
QUEUE_DEPTH = 4
#: Bytes passed to one write(2). Writing a multi-MiB chunk at once costs
#: the kernel three times the system time of writing it in 1 MiB slices
#: (measured on ext4: 0.9 s against 0.27 s for a 1 GiB image).
WRITE_SIZE = 1024 * 1024
_WILDCARD_HOSTS = ('', '0.0.0.0', '::')

http_server_opts = [
    cfg.StrOpt('compression',
               default=compression.ZSTD,
               choices=[
                   (compression.ZSTD, 'Fast, good ratio; agents decompress '
                    'several times faster than gzip.'),
                   (compression.GZIP, 'For tool chains that cannot read '
                    'zstd; slower to compress and to decompress.'),
                   (compression.NONE, 'Serve the image as it is; for fast '
                    'networks or images that do not compress.'),
               ],
               help='Compression of the artifacts served to the agents. A '
                    'change applies to each image on the next run (the '
                    'artifact gets a new name).'),
    cfg.IntOpt('compression_level',
               min=1, max=22,
               help='Compression level; unset means the algorithm\'s '
                    'default (zstd 3, gzip 6). gzip accepts 1-9, zstd '
                    '1-22. Higher levels shrink artifacts by a few percent '
                    'at many times the CPU time.'),
    cfg.IntOpt('compression_threads',
               default=-1, min=-1,
               help='zstd worker threads per image being compressed: -1 '
                    'means one per CPU, 0 compresses in the serving thread '
                    'only. Lower it to leave CPUs to other services. gzip '
                    'always uses one thread.'),
    cfg.StrOpt('document_root',
               default='/var/lib/precache/www',
               help='Directory holding the compressed artifacts, one '
                    'sub-directory per image. It needs room for a '
                    'compressed copy of every listed image. Point '
                    'Apache or nginx here when listen is false.'),
    cfg.URIOpt('base_url',
               schemes=['http', 'https'],
               sample_default='http://<fully qualified name of this '
                              'host>:<bind_port>',
               help='URL under which document_root is reachable by the '
                    'agents, e.g. http://precache.example.org:8780 or the '
                    'URL of a load balancer. Unset means the built-in '
                    'server\'s address: this host\'s fully qualified name '
                    '(or bind_host when it is a specific address) and '
                    'bind_port. Required when listen is false.'),
    cfg.BoolOpt('listen',
                default=True,
                help='Run the built-in web server. Set to false when Apache, '
                     'nginx or another web server serves document_root, '
                     'and set base_url.'),
    cfg.HostAddressOpt('bind_host',
                       default='0.0.0.0',
                       help='Address the built-in web server listens on. '
                            'The default, every IPv4 address, lets the '
                            'agents of all compute hosts connect; use a '
                            'specific address to serve one network only, '
                            '127.0.0.1 behind a local reverse proxy, or :: '
                            'for IPv6.'),
    cfg.PortOpt('bind_port',
                default=8780,
                help='TCP port the built-in web server listens on.'),
    cfg.IntOpt('cache_max_age',
               default=86400, min=0,
               help='Seconds that HTTP caches (Squid in front of the '
                    'origin, agents\' proxies) may keep an artifact without '
                    'asking the origin again, sent as Cache-Control: '
                    'public, max-age=N. Artifacts never change under their '
                    'URL, so long values are safe.'),
    cfg.IntOpt('threads',
               default=64, min=1,
               help='Client connections the built-in web server serves at '
                    'once; further connections wait until one ends. Each '
                    'transfer is a sendfile() call, so a thread costs '
                    'little CPU. A connection takes a thread of these only '
                    'once its request head is in.'),
    cfg.FloatOpt('head_timeout',
                 default=webserver.HEAD_TIMEOUT, min=0.1,
                 help='Seconds a client of the built-in web server has to '
                      'send a request line and its headers, in all (not '
                      'per read: a client trickling a byte at a time is '
                      'cut off too). Also how long an idle kept-alive '
                      'connection stays open.'),
    cfg.IntOpt('max_connections_per_address',
               default=webserver.MAX_CONNECTIONS_PER_ADDRESS, min=1,
               help='Connections one client address may hold open to the '
                    'built-in web server at once; further ones are closed '
                    'at once, so that a few clients cannot take every '
                    'thread. Raise it when a caching proxy (Squid) in '
                    'front of the origin fetches for many agents.'),
]


class HTTPServer(base.ImageServer):
    """Serves compressed images over HTTP, proxy and resume friendly.

    :param conf: the process's ConfigOpts.
    :raises ConfigurationError: the options contradict each other.
    """

    carries_extra_artifacts = True

    def __init__(self, conf):
        super().__init__(conf)
        _check_options(self.options)
        self._server = None
        self._base_url = None

    @classmethod
    def get_config_group(cls):
        return GROUP

    @classmethod
    def get_config_opts(cls):
        return http_server_opts

    def start(self):
        """Prepare ``document_root`` and start the built-in web server."""
        root = self.prepare_root()
        if not self.options.listen:
            return
        address = (self.options.bind_host, self.options.bind_port)
        try:
            opts = self.options
            self._server = httpd.Server(address, root, opts.cache_max_age,
                                        opts.threads, opts.head_timeout,
                                        opts.max_connections_per_address)
        except OSError as exc:
            raise exception.ConfigurationError(
                reason='the http server cannot listen on %s port %d (%s); '
                       'check [%s] bind_host and bind_port'
                       % (address + (exc, GROUP)))
        self._server.start('precache-httpd')
        self._base_url = None  # the port is known now
        LOG.info('Serving %s at %s', root, self.base_url)

    def prepare_root(self):
        """Create ``document_root``; remove what a crash left in it.

        :returns: its path.
        """
        root = self.options.document_root
        os.makedirs(root, exist_ok=True)
        for directory in _image_directories(root):
            fileutils.remove_leftovers(directory)
        return root

    def stop(self):
        """Stop the built-in web server and close its socket."""
        if self._server is None:
            return
        self._server.stop()
        self._server = None

    @property
    def base_url(self):
        """The URL of ``document_root``, without a trailing slash."""
        if self._base_url is None:
            self._base_url = self._make_base_url()
        return self._base_url

    def _make_base_url(self):
        if self.options.base_url:
            return self.options.base_url.rstrip('/')
        host = self.options.bind_host
        if host in _WILDCARD_HOSTS:
            host = socket.getfqdn()
        if ':' in host:
            host = '[%s]' % host
        port = self._server.port if self._server else self.options.bind_port
        return 'http://%s:%d' % (host, port)

    def serve(self, image, path):
        """Publish the compressed artifact of ``image``.

        :returns: one ``http`` source dict.
        :raises ServeFailed: the artifact could not be written.
        """
        return [self.source(*self.publish(image, path))]

    def source(self, artifact, record):
        """Return the ``http`` source dict of a published artifact."""
        return dict(artifacts.artifact_source(artifact, record),
                    method='http',
                    url='%s/%s' % (self.base_url, artifact.url_path))

    def publish(self, image, path):
        """Write the compressed artifact of ``image`` unless it is there.

        The artifacts of the image's older versions are removed.

        :returns: ``(artifact, record)``: the
            :class:`~precache.service.servers.artifacts.Artifact` and its
            record (``size``, ``hash_algo``, ``hash_value``).
        :raises ServeFailed: the artifact could not be written.
        """
        try:
            artifact = artifacts.Artifact(self.options.document_root,
                                          image, self.options.compression)
            record = artifact.load() or self._publish(artifact, path)
            artifact.remove_others()
        except exception.PrecacheException:
            raise
        except Exception as exc:
            raise exception.ServeFailed(image_id=image.id,
                                        reason=exc) from exc
        return artifact, record

    def extra_artifact_path(self, image, name):
        """Return where the extra artifact ``name`` of ``image`` goes.

        Beside the image's full artifact in ``document_root``.

        :raises ServeFailed: ``name`` is not a valid artifact name.
        """
        artifact = artifacts.Artifact(self.options.document_root, image,
                                      self.options.compression)
        if (not name or '/' in name or httpd.is_hidden(name) or
                not name.startswith(artifact.version_prefix) or
                name.startswith(artifact.version_prefix +
                                artifacts.ARTIFACT_EXTENSION)):
            raise exception.ServeFailed(
                image_id=image.id,
                reason='%r is not a valid name for an extra artifact' % name)
        os.makedirs(artifact.directory, exist_ok=True)
        return os.path.join(artifact.directory, name)

    def serve_extra(self, image, artifact):
        """Describe an extra artifact written in ``document_root``.

        :returns: one ``http`` source dict.
        :raises ServeFailed: the file is not there.
        """
        if not os.path.isfile(artifact.path):
            raise exception.ServeFailed(
                image_id=image.id, reason='its extra artifact %s is missing'
                                          % artifact.path)
        return [self.extra_source(image, artifact)]

    def extra_source(self, image, artifact):
        """Return the ``http`` source dict of an extra artifact."""
        return dict(artifacts.extra_fields(artifact), method='http',
                    url='%s/%s/%s' % (self.base_url,
                                      urllib.parse.quote(image.id, safe=''),
                                      urllib.parse.quote(artifact.name)))

    def retire(self, image_id):
        """Remove the image's directory: its artifacts and records."""
        if httpd.is_hidden(image_id) or '/' in image_id:
            return  # never published: not a valid file name
        directory = os.path.join(self.options.document_root, image_id)
        if os.path.isdir(directory):
            LOG.info('Removing the artifacts of image %s, no longer '
                     'served', image_id)
            shutil.rmtree(directory)

    def artifact_path(self, image):
        """Return the local path of ``image``'s current artifact.

        Valid once :meth:`serve` returned for ``image``: plugins built on
        this server (``bittorrent``) describe that file.
        """
        return artifacts.Artifact(self.options.document_root, image,
                                  self.options.compression).path

    def _publish(self, artifact, path):
        opts = self.options
        started = time.monotonic()
        os.makedirs(artifact.directory, exist_ok=True)
        with fileutils.atomic_write(artifact.path) as out:
            size, digest = compress_file(
                path, out, artifact.compression, opts.compression_level,
                opts.compression_threads)
        elapsed = max(time.monotonic() - started, 1e-6)
        source_size = os.path.getsize(path)
        LOG.info('Compressed image %s with %s: %d -> %d bytes (ratio '
                 '%.2f) in %.1f s, %.0f MB/s', artifact.image_id,
                 artifact.compression, source_size, size,
                 source_size / max(size, 1), elapsed,
                 source_size / elapsed / 1e6)
        return artifact.save(size, digest)


def _check_options(opts):
    if not opts.listen and not opts.base_url:
        raise exception.ConfigurationError(
            reason='[%s] base_url must be set when listen is false: it is '
                   'the URL of document_root on the external web server'
                   % GROUP)
    if (opts.compression == compression.GZIP and
            opts.compression_level is not None and
            opts.compression_level > 9):
        raise exception.ConfigurationError(
            reason='[%s] compression_level %d is beyond gzip\'s 1-9'
                   % (GROUP, opts.compression_level))


def _image_directories(root):
    for entry in os.scandir(root):
        if entry.is_dir(follow_symlinks=False):
            yield entry.path


def compress_file(path, out, algorithm, level=None, threads=0):
    """Compress the file at ``path`` into the file object ``out``.

    The caller's thread reads and compresses (zstd's workers do the heavy
    lifting); a writer thread hashes and writes the compressed chunks, so
    that hashing and writing overlap with compression.

    :param out: a binary file object open for writing.
    :param algorithm: one of :data:`precache.common.compression.ALGORITHMS`.
    :param level: the compression level; the algorithm's default if None.
    :param threads: zstd worker threads (-1: one per CPU).
    :returns: ``(size, hex digest)`` of the compressed bytes.
    """
    compressor = compression.compressor(algorithm, level, threads)
    digest = hashlib.new(artifacts.HASH_ALGO)
    start = out.tell()

    def write(data):
        digest.update(data)
        view = memoryview(data)
        for offset in range(0, len(view), WRITE_SIZE):
            out.write(view[offset:offset + WRITE_SIZE])

    sink = streams.ThreadedSink(write, depth=QUEUE_DEPTH,
                                name='precache-artifact-writer')
    try:
        with open(path, 'rb', buffering=0) as src:
            # Compressors copy their input; the identity does not.
            reuse = algorithm != compression.NONE
            for chunk in _read_chunks(src, reuse):
                sink.write(compressor.process(chunk))
        sink.write(compressor.finish())
    except BaseException:
        sink.abort()
        raise
    sink.close()
    return out.tell() - start, digest.hexdigest()


def _read_chunks(src, reuse):
    """Yield the bytes of the file ``src`` in :data:`CHUNK_SIZE` pieces.

    :param reuse: yield views of one buffer, each valid until the next is
        read; this spares the page faults of a fresh buffer per chunk,
        which show as system time when compressing a large image.
    """
    if not reuse:
        yield from iter(lambda: src.read(CHUNK_SIZE), b'')
        return
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    for count in iter(lambda: src.readinto(buf), 0):
        yield view[:count]
