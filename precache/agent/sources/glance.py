"""Downloading an image from Glance with the agent's own credentials.

This is what Nova does on a cache miss, and the baseline the other
sources improve on: every host reads the whole image from Glance. The
client is built from the agent's ``[glance]`` options (see
:mod:`precache.common.glance`). Glance serves the image's own bytes, so a
``glance`` source has no ``compression`` (``none``).
"""

from precache.agent.sources import base
from precache.common import glance


class GlanceSource(glance.ClientMixin, base.ImageSource):
    """Streams the image's data from Glance."""

    method = 'glance'

    def locator(self, source):
        return 'Glance'

    def iter_chunks(self, image, source):
        return glance.iter_image_data(self.glance, image,
                                      self.conf.glance.download_chunk_size)
