"""The ``swift`` fetcher: read images straight from Glance's Swift store."""

from keystoneauth1.identity import v3 as ks_identity
from keystoneauth1 import session as ks_session
from oslo_config import cfg
from oslo_log import log as logging
import swiftclient
from swiftclient import exceptions as swift_exc

from precache.common import exception
from precache.service.fetchers import base

LOG = logging.getLogger(__name__)

GROUP = 'swift_fetcher'


class SwiftFetcher(base.ImageFetcher):
    """Downloads images from Swift objects, bypassing Glance's API.

    Meant for clouds whose Glance stores images in Swift: the service
    reads ``<container>/<object_name_format>`` with its own Swift
    credentials (Keystone v3, or v1 auth such as tempauth). A large image
    stored as a Swift manifest (SLO/DLO) is read as one object. The base
    class verifies the bytes against the image's ``os_hash_value``.

    :param conf: the process's ConfigOpts.
    """

    def __init__(self, conf):
        super().__init__(conf)
        self._session = None

    @classmethod
    def get_config_group(cls):
        return GROUP

    @classmethod
    def get_config_opts(cls):
        return [
            cfg.StrOpt('container',
                       default='glance',
                       help='Swift container holding the images; Glance\'s '
                            'swift_store_container (default "glance").'),
            cfg.StrOpt('object_name_format',
                       default='{image_id}',
                       help='Name of an image\'s object, a Python format '
                            'string over the image record\'s fields: '
                            '{image_id}, {name}, {disk_format}, ... '
                            'Glance names objects by image id.'),
            cfg.URIOpt('auth_url',
                       help='Authentication URL: Keystone\'s (e.g. '
                            'https://keystone:5000/v3) for auth_version 3, '
                            'or the v1 auth URL of the proxy (e.g. '
                            'http://swift:8080/auth/v1.0 with tempauth).'),
            cfg.StrOpt('auth_version',
                       default='3',
                       choices=(('1', 'v1 auth middleware (tempauth)'),
                                ('3', 'Keystone v3')),
                       help='Swift auth version: 3 for Keystone, 1 '
                            'for v1 auth middleware such as tempauth.'),
            cfg.StrOpt('user',
                       help='User name; with auth_version 1, as the '
                            'middleware expects it (tempauth: '
                            'account:user).'),
            cfg.StrOpt('key',
                       secret=True,
                       help='Password (Keystone) or key (v1) of user.'),
            cfg.StrOpt('project_name',
                       help='Keystone project whose Swift account holds '
                            'container (auth_version 3); for Glance\'s '
                            'single-tenant store, Glance\'s project.'),
            cfg.StrOpt('user_domain_name',
                       default='Default',
                       help='Keystone domain of user (auth_version 3).'),
            cfg.StrOpt('project_domain_name',
                       default='Default',
                       help='Keystone domain of project_name '
                            '(auth_version 3).'),
            cfg.StrOpt('region_name',
                       help='Region of the Swift endpoint in the Keystone '
                            'catalog, when there are several.'),
            cfg.StrOpt('interface',
                       default='internal',
                       choices=(('public', 'the public endpoint'),
                                ('internal', 'the internal endpoint'),
                                ('admin', 'the admin endpoint')),
                       help='Which Swift endpoint of the Keystone catalog '
                            'to use (auth_version 3).'),
            cfg.URIOpt('storage_url',
                       help='Use this storage URL (e.g. '
                            'https://swift:8080/v1/AUTH_<project id>) '
                            'instead of the one auth returns.'),
            cfg.StrOpt('cafile',
                       help='CA bundle to verify Swift\'s and Keystone\'s '
                            'TLS certificates with.'),
            cfg.BoolOpt('insecure',
                        default=False,
                        help='Do not verify TLS certificates (tests only).'),
            cfg.IntOpt('retries',
                       default=3, min=0,
                       help='Times a failed request is retried, resuming a '
                            'cut download where it stopped.'),
            cfg.FloatOpt('timeout',
                         default=60, min=1,
                         help='Seconds to wait for Swift to answer.'),
            cfg.IntOpt('chunk_size',
                       default=1024 * 1024, min=4096,
                       help='Bytes read from Swift at a time.'),
        ]

    def connection(self):
        """Return a new :class:`swiftclient.client.Connection`.

        A connection is not thread safe, and the service fetches several
        images at once: each fetch gets its own. With Keystone they share
        one keystoneauth1 session, hence one token.
        """
        opts = self.options
        os_options = {'region_name': opts.region_name,
                      'endpoint_type': opts.interface}
        if opts.auth_version == '1':
            auth = dict(authurl=opts.auth_url, user=opts.user, key=opts.key,
                        auth_version='1')
        else:
            auth = dict(session=self._keystone_session())
        return swiftclient.Connection(
            os_options={k: v for k, v in os_options.items() if v},
            preauthurl=opts.storage_url, retries=opts.retries,
            timeout=opts.timeout, cacert=opts.cafile,
            insecure=opts.insecure, **auth)

    def _keystone_session(self):
        """Return the keystoneauth1 session for auth_version 3."""
        if self._session is None:
            opts = self.options
            auth = ks_identity.Password(
                auth_url=opts.auth_url, username=opts.user,
                password=opts.key, project_name=opts.project_name,
                user_domain_name=opts.user_domain_name,
                project_domain_name=opts.project_domain_name)
            verify = False if opts.insecure else (opts.cafile or True)
            self._session = ks_session.Session(auth=auth, verify=verify,
                                               timeout=opts.timeout)
        return self._session

    def object_name(self, image):
        """Return the name of ``image``'s Swift object.

        :raises ConfigurationError: object_name_format names an unknown
            field.
        """
        fields = image.to_dict()
        fields['image_id'] = image.id
        try:
            return self.options.object_name_format.format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise exception.ConfigurationError(
                reason='[%s] object_name_format %r cannot be filled from '
                       'an image record (unknown field %s); use fields '
                       'such as {image_id}'
                       % (GROUP, self.options.object_name_format, exc))

    def iter_chunks(self, image):
        """Yield the bytes of the image's object.

        :raises ImageNotFound: there is no such object (or container).
        :raises FetchFailed: Swift or its auth failed; the reason names the
            container and object.
        """
        container = self.options.container
        name = self.object_name(image)
        conn = self.connection()
        body = None
        try:
            headers, body = conn.get_object(
                container, name, resp_chunk_size=self.options.chunk_size)
            LOG.debug('Reading image %(id)s from Swift object '
                      '%(container)s/%(name)s (%(size)s bytes)',
                      {'id': image.id, 'container': container, 'name': name,
                       'size': headers.get('content-length')})
            yield from body
        except swift_exc.ClientException as exc:
            if exc.http_status == 404:
                raise exception.ImageNotFound(
                    image_id=image.id,
                    reason='Swift has no object %s in container %s'
                           % (name, container))
            raise self._failed(image, container, name, exc)
        except Exception as exc:
            raise self._failed(image, container, name, exc)
        finally:
            if body is not None:
                body.close()
            conn.close()

    @staticmethod
    def _failed(image, container, name, exc):
        return exception.FetchFailed(
            image_id=image.id,
            reason='reading Swift object %s/%s failed: %s; check the [%s] '
                   'options and that Swift is reachable'
                   % (container, name, exc, GROUP))
