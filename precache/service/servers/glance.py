"""The ``glance`` image server: agents download from Glance themselves.

This is Nova's own way of filling its image cache, done ahead of the
first boot: nothing is fetched, compressed or served by precache-service,
and every agent streams the image from the Glance API (with the
credentials of its ``[glance]`` section). It is the baseline the other
servers are measured against, and the fallback source they can add.
"""

from precache.service.servers import base


class GlanceServer(base.ImageServer):
    """Tells the agents to download each image from Glance."""

    needs_local_copy = False

    def serve(self, image, path):
        """Return the single ``glance`` source; ``path`` is ignored.

        :param image: the :class:`precache.objects.image.ImageRecord` to
            publish.
        :param path: ``None``: this server needs no local copy.
        :returns: ``[{'method': 'glance'}]``.
        """
        return [{'method': 'glance'}]
