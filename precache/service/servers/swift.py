"""The ``swift`` image server: artifacts in Swift, fetched by TempURL.

The compressed artifact is the one the ``http`` server makes (its
``[http_server]`` compression options and ``document_root`` apply: the
local copy is kept there), uploaded once to ``[swift_server] container``
as ``<image id>/<artifact name>`` with its sha256 in the object's
metadata. An artifact larger than ``segment_size`` becomes a Static
Large Object whose segments are ``<image id>/<artifact name>.seg/NNNNNNNN``
in the same container. Swift only shows an object once it is complete,
so an agent never reads a partial upload.

``meta`` gets a ``swift`` source: a TempURL of the object (see
:mod:`precache.service.servers.tempurl` for its expiry, which moves in
steps so a meta changes only when its URL needs renewing). With
``http_fallback`` the service's own ``http`` source follows it, for
agents that cannot reach Swift or hold an expired URL.

Extra artifacts (a delta, see :mod:`precache.service.servers.base`)
are written beside the local copy by the service and uploaded the same
way, as ``<image id>/<extra artifact name>``: a ``swift`` source with
their TempURL, then the ``http`` one with ``http_fallback``.

Cleanup: when an image changes, the objects of its older version (its
extra artifacts included) get
``X-Delete-After: [service] retire_grace_period`` (Swift removes them
then; agents still fetching the old version finish); when an image is no
longer served, :meth:`SwiftServer.retire` deletes every object under
``<image id>/``.
"""

import json
import threading

from oslo_config import cfg
from oslo_log import log as logging
from swiftclient import exceptions as swift_exc

from precache.common import exception
from precache.common import plugin
from precache.service.servers import artifacts
from precache.service.servers import base
from precache.service.servers import tempurl
from precache.service import swiftauth

LOG = logging.getLogger(__name__)

GROUP = 'swift_server'

#: Object metadata holding the artifact's sha256.
HASH_HEADER = 'X-Object-Meta-Precache-Sha256'
#: Between an SLO's name and its segments' numbers.
SEGMENT_INFIX = '.seg/'
#: Bytes read from the artifact per write to Swift.
CHUNK_SIZE = 1024 * 1024
_KEY_HEADERS = ('x-account-meta-temp-url-key',
                'x-account-meta-temp-url-key-2')

swift_server_opts = [
    cfg.StrOpt('container',
               default='precache',
               help='Swift container the artifacts are uploaded to; '
                    'created if missing. Give it to precache alone: the '
                    'service deletes the objects of images it no longer '
                    'serves.'),
] + swiftauth.auth_opts(
    'Keystone project whose Swift account holds container '
    '(auth_version 3).') + [
    cfg.URIOpt('agent_storage_url',
               schemes=['http', 'https'],
               help='Storage URL of the account as the agents reach it, '
                    'e.g. https://swift.example.org/v1/AUTH_<project id>, '
                    'when it differs from the one the service uses. '
                    'Unset: the service\'s. Agents must have its scheme, '
                    'host and port in [agent] allowed_origins.'),
    cfg.StrOpt('tempurl_key',
               secret=True,
               help='TempURL key to sign the agents\' URLs with: one of '
                    'the account\'s (X-Account-Meta-Temp-URL-Key or -Key-2) '
                    'keys. Unset: the account\'s key, read with the '
                    'service\'s credentials.'),
    cfg.IntOpt('tempurl_lifetime',
               default=7 * 86400, min=600,
               help='Longest validity, in seconds, of a TempURL put in '
                    'meta.'),
    cfg.IntOpt('tempurl_min_remaining',
               default=86400, min=300,
               help='Shortest validity, in seconds, of a TempURL put in '
                    'meta: the URL is renewed (the meta changes, without '
                    'a new fan-out) when less would remain. Keep it longer '
                    'than a distribution round ([service] round_timeout) '
                    'and the slowest download; it must be less than '
                    'tempurl_lifetime.'),
    cfg.IntOpt('segment_size',
               default=1024, min=1,
               help='MiB per segment of an artifact uploaded as a Static '
                    'Large Object; smaller artifacts are one object. Swift '
                    'refuses objects beyond its max_file_size (5 GiB by '
                    'default) and needs the slo middleware for larger '
                    'ones.'),
    cfg.BoolOpt('http_fallback',
                default=False,
                help='Also run the http server ([http_server] options) and '
                     'list its URL after the TempURL, for agents that '
                     'cannot reach Swift or hold an expired URL.'),
]


class SwiftServer(base.ImageServer):
    """Uploads compressed images to Swift; agents fetch them by TempURL.

    :param conf: the process's ConfigOpts.
    :raises ConfigurationError: the options contradict each other.
    """

    carries_extra_artifacts = True

    def __init__(self, conf):
        super().__init__(conf)
        opts = self.options
        if opts.tempurl_min_remaining >= opts.tempurl_lifetime:
            raise exception.ConfigurationError(
                reason='[%s] tempurl_min_remaining (%d) must be less than '
                       'tempurl_lifetime (%d)'
                       % (GROUP, opts.tempurl_min_remaining,
                          opts.tempurl_lifetime))
        self.http = plugin.load_plugin('precache.servers', 'http', conf,
                                       option='[service] server')
        self._connector = swiftauth.SwiftConnector(opts)
        self._lock = threading.Lock()
        #: (storage URL, key) once read.
        self._account = None
        #: image id -> (object name, sha256) uploaded or found in place.
        self._in_place = {}
        #: (object name, sha256) of the extra artifacts in place.
        self._extras_in_place = set()

    @classmethod
    def get_config_group(cls):
        return GROUP

    @classmethod
    def get_config_opts(cls):
        return swift_server_opts

    def start(self):
        """Prepare the local artifacts; start the http fallback if set."""
        if self.options.http_fallback:
            self.http.start()
        else:
            self.http.prepare_root()

    def stop(self):
        self.http.stop()

    def serve(self, image, path):
        """Upload the image's artifact unless in place; sign its TempURL.

        :returns: ``[swift source]``, then the ``http`` one with
            ``http_fallback``.
        :raises ServeFailed: the artifact could not be made or uploaded,
            or no TempURL key is known.
        """
        artifact, record = self.http.publish(image, path)
        return self._serve_object(
            image.id, artifact.name, artifact.path,
            artifacts.artifact_source(artifact, record), artifact.keeps,
            lambda: self.http.source(artifact, record))

    def extra_artifact_path(self, image, name):
        """Beside the local copy of the full artifact (see ``http``)."""
        return self.http.extra_artifact_path(image, name)

    def serve_extra(self, image, artifact):
        """Upload an extra artifact unless in place; sign its TempURL.

        :returns: ``[swift source]``, then the ``http`` one with
            ``http_fallback``.
        :raises ServeFailed: the artifact could not be uploaded, or no
            TempURL key is known.
        """
        return self._serve_object(
            image.id, artifact.name, artifact.path,
            artifacts.extra_fields(artifact), None,
            lambda: self.http.extra_source(image, artifact))

    def _serve_object(self, image_id, artifact_name, path, fields, keeps,
                      http_source):
        """Upload ``path`` as ``<image id>/<artifact name>`` unless there.

        :param fields: the artifact's ``compression``, ``size``,
            ``hash_algo`` and ``hash_value``, as in a source dict.
        :param keeps: for the full artifact, tells which other objects
            of the image to keep when this one is uploaded or found (see
            :meth:`_expire_others`); Swift deletes the rest after the
            grace. None (extra artifacts) leaves them alone.
        :param http_source: returns the ``http`` fallback's source dict.
        :returns: the source dicts.
        """
        name = '%s/%s' % (image_id, artifact_name)
        placed = (name, fields['hash_value'])
        conn = self._connector.connection()
        try:
            storage_url, key = self._account_of(conn)
            known = (self._in_place.get(image_id) == placed if keeps
                     else placed in self._extras_in_place)
            if not known:
                self._upload_unless_in_place(conn, image_id, name, path,
                                             fields)
                if keeps:
                    self._expire_others(conn, image_id, keeps)
                    self._in_place[image_id] = placed
                else:
                    self._extras_in_place.add(placed)
        except swift_exc.ClientException as exc:
            raise self._failed(image_id, 'Swift refused %s/%s: %s'
                               % (self.options.container, name, exc)) from exc
        except exception.PrecacheException:
            raise
        except Exception as exc:
            raise self._failed(image_id, 'uploading to %s/%s failed: %s'
                               % (self.options.container, name, exc)) from exc
        finally:
            conn.close()
        opts = self.options
        url = tempurl.sign(
            opts.agent_storage_url or storage_url, opts.container, name, key,
            tempurl.expiry(opts.tempurl_lifetime,
                           opts.tempurl_min_remaining))
        sources = [dict(fields, method='swift', url=url)]
        if opts.http_fallback:
            sources.append(http_source())
        return sources

    def retire(self, image_id):
        """Delete every object under ``<image id>/``; drop local copies."""
        conn = self._connector.connection()
        try:
            names = self._names(conn, image_id)
            for name in names:
                try:
                    conn.delete_object(self.options.container, name)
                except swift_exc.ClientException as exc:
                    if exc.http_status != 404:
                        raise
        finally:
            conn.close()
        if names:
            LOG.info('Deleted %d Swift object(s) of image %s, no longer '
                     'served', len(names), image_id)
        self._in_place.pop(image_id, None)
        self._extras_in_place = {
            placed for placed in self._extras_in_place
            if not placed[0].startswith(image_id + '/')}
        self.http.retire(image_id)

    @staticmethod
    def _failed(image_id, reason):
        return exception.ServeFailed(
            image_id=image_id,
            reason='%s; check the [%s] options and that Swift is reachable'
                   % (reason, GROUP))

    # -- account -----------------------------------------------------------

    def _account_of(self, conn):
        """Return ``(storage URL, TempURL key)``, read once.

        :raises ServeFailed: no key is configured nor set on the account,
            or the configured key is not one of the account's.
        """
        with self._lock:
            if self._account is None:
                headers = conn.head_account()
                keys = [headers[h] for h in _KEY_HEADERS if headers.get(h)]
                key = self.options.tempurl_key
                if not key and not keys:
                    raise exception.ConfigurationError(
                        reason='the Swift account %s has no TempURL key; '
                               'set one (swift post -m Temp-URL-Key:...) '
                               'or [%s] tempurl_key' % (conn.url, GROUP))
                if key and keys and key not in keys:
                    raise exception.ConfigurationError(
                        reason='[%s] tempurl_key is not one of the TempURL '
                               'keys of the Swift account %s: Swift would '
                               'refuse the agents\' URLs'
                               % (GROUP, conn.url))
                conn.put_container(self.options.container)
                self._account = (conn.url, key or keys[0])
            return self._account

    # -- objects -----------------------------------------------------------

    def _names(self, conn, image_id):
        """Return the names of the objects under ``<image id>/``."""
        try:
            _headers, listing = conn.get_container(
                self.options.container, prefix=image_id + '/',
                full_listing=True)
        except swift_exc.ClientException as exc:
            if exc.http_status == 404:
                return []
            raise
        return [item['name'] for item in listing]

    def _upload_unless_in_place(self, conn, image_id, name, path, record):
        container = self.options.container
        try:
            headers = conn.head_object(container, name)
        except swift_exc.ClientException as exc:
            if exc.http_status != 404:
                raise
            headers = {}
        if (headers.get(HASH_HEADER.lower()) == record['hash_value'] and
                'x-delete-at' not in headers):
            LOG.debug('Swift object %s/%s of image %s is in place',
                      container, name, image_id)
            return
        segment = self.options.segment_size * 1024 * 1024
        meta = {HASH_HEADER: record['hash_value']}
        with open(path, 'rb') as f:
            if record['size'] <= segment:
                conn.put_object(container, name, f,
                                content_length=record['size'],
                                chunk_size=CHUNK_SIZE, headers=meta)
            else:
                manifest = self._upload_segments(conn, name, f,
                                                 record['size'], segment)
                conn.put_object(container, name, json.dumps(manifest),
                                query_string='multipart-manifest=put',
                                headers=meta)
        LOG.info('Uploaded the artifact of image %s to Swift as %s/%s '
                 '(%d bytes)', image_id, container, name, record['size'])

    def _upload_segments(self, conn, name, f, size, segment):
        """Upload ``f`` in segments; return the SLO manifest."""
        container = self.options.container
        manifest = []
        for index, offset in enumerate(range(0, size, segment)):
            length = min(segment, size - offset)
            segment_name = '%s%s%08d' % (name, SEGMENT_INFIX, index)
            etag = conn.put_object(container, segment_name, f,
                                   content_length=length,
                                   chunk_size=CHUNK_SIZE)
            manifest.append({'path': '/%s/%s' % (container, segment_name),
                             'etag': etag, 'size_bytes': length})
        return manifest

    def _expire_others(self, conn, image_id, keeps):
        """Let Swift delete the image's older objects after the grace.

        Agents may still be fetching an older version; Swift's object
        expiry removes it ``[service] retire_grace_period`` seconds later.

        :param keeps: tells, from an artifact's name (an object's name
            after ``<image id>/``, segments counting as their SLO), which
            objects belong to the version served: those stay.
        """
        grace = self.conf.service.retire_grace_period
        for other in self._names(conn, image_id):
            if keeps(other[len(image_id) + 1:].split(SEGMENT_INFIX)[0]):
                continue
            headers = conn.head_object(self.options.container, other)
            if 'x-delete-at' in headers:
                continue
            kept = {k: v for k, v in headers.items()
                    if k.startswith('x-object-meta-')}
            kept['X-Delete-After'] = str(max(grace, 1))
            conn.post_object(self.options.container, other, kept)
            LOG.info('Swift object %s/%s of an older version of image %s '
                     'expires in %d s', self.options.container, other,
                     image_id, grace)
