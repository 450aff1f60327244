"""The ``swift`` fetcher: read images straight from Glance's Swift store."""

from oslo_config import cfg
from oslo_log import log as logging
from swiftclient import exceptions as swift_exc

from precache.common import exception
from precache.service.fetchers import base
from precache.service import swiftauth

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
        self._connector = swiftauth.SwiftConnector(self.options)

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
        ] + swiftauth.auth_opts(
            'Keystone project whose Swift account holds container '
            '(auth_version 3); for Glance\'s single-tenant store, '
            'Glance\'s project.') + [
            cfg.IntOpt('chunk_size',
                       default=1024 * 1024, min=4096,
                       help='Bytes read from Swift at a time.'),
        ]

    def connection(self):
        """Return a new :class:`swiftclient.client.Connection`.

        Each fetch gets its own (see
        :meth:`~precache.service.swiftauth.SwiftConnector.connection`).
        """
        return self._connector.connection()

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
