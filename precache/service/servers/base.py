"""The ImageServer plugin interface (namespace ``precache.servers``).

What a server publishes stays published while agents may need it: the
service calls :meth:`ImageServer.retire` for an image only once it is no
longer desired (neither listed nor requested) for ``[service]
retire_grace_period`` seconds, counted from the last time it was listed,
requested, served or cast, and while no distribution round of it is open
(see :mod:`precache.service.retirement`). A plugin writer implements the
removal; the policy is the service's.
"""

import abc

from precache.common import plugin


class ImageServer(plugin.Plugin, metaclass=abc.ABCMeta):
    """Makes a fetched image available to the agents.

    :param conf: the process's ConfigOpts.
    """

    #: True when the server needs the image's bytes in the staging area;
    #: a server that lets agents download from elsewhere (e.g. Glance)
    #: sets it to False and the service skips the fetch.
    needs_local_copy = True

    def start(self):
        """Start what runs for the life of the service.

        A web server or a seeder, for instance. Called once before the
        first run; the default does nothing.
        """

    def stop(self):
        """Stop what :meth:`start` started. The default does nothing."""

    @abc.abstractmethod
    def serve(self, image, path):
        """Publish ``image`` and describe how to download it.

        Must be idempotent and cheap when the image is already served
        unchanged: it is called on every run.

        :param image: a :class:`precache.objects.image.ImageRecord`.
        :param path: local path of the verified image bytes, or ``None``
            when :attr:`needs_local_copy` is False.
        :returns: the list of source dicts for ``meta['sources']`` (see
            :mod:`precache.objects.meta`), most preferred first.
        :raises ServeFailed: the image could not be published.
        """

    def retire(self, image_id):
        """Remove what was published for an image no longer served.

        Called by the service (see :mod:`precache.service.retirement`)
        once no agent should fetch the image any more: its files, torrents
        or objects can go. Must be idempotent (it is called again after a
        failure, and by a new service instance for images an earlier one
        retired) and must not fail when nothing was published. Not called
        while :meth:`serve` runs for the same image. The default does
        nothing.

        :param image_id: the image's id.
        :raises Exception: anything; the service logs it and calls again
            at its next run.
        """
