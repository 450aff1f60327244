"""The ``url`` fetcher: images downloaded from ``<base_url><image id>``."""

from oslo_config import cfg
from precache.common import exception
from precache.service.fetchers import base
import requests


class URLFetcher(base.ImageFetcher):
    """Streams an image's bytes over HTTP.

    Only :meth:`iter_chunks` is written here: the base class stages the
    bytes in a temporary file, verifies them against the image's hash and
    size, and keeps them only when they match.
    """

    @classmethod
    def get_config_group(cls):
        return 'url_fetcher'

    @classmethod
    def get_config_opts(cls):
        return [
            cfg.StrOpt('base_url',
                       help='URL prefix of the images; the image id is '
                            'appended.'),
            cfg.FloatOpt('timeout', default=60, min=1,
                         help='Seconds to wait for the server.'),
            cfg.IntOpt('chunk_size', default=1024 * 1024, min=4096,
                       help='Bytes read at a time.'),
        ]

    def iter_chunks(self, image):
        url = self.options.base_url + image.id
        with requests.get(url, stream=True,
                          timeout=self.options.timeout) as response:
            if response.status_code == 404:
                raise exception.ImageNotFound(
                    image_id=image.id, reason='%s answered 404' % url)
            if response.status_code != 200:
                raise exception.FetchFailed(
                    image_id=image.id,
                    reason='%s answered %d' % (url, response.status_code))
            yield from response.iter_content(self.options.chunk_size)
