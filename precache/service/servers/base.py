"""The ImageServer plugin interface (namespace ``precache.servers``).

What a server publishes stays published while agents may need it: the
service calls :meth:`ImageServer.retire` for an image only once it is no
longer desired (neither listed nor requested) for ``[service]
retire_grace_period`` seconds, counted from the last time it was listed,
requested, served or cast, and while no distribution round of it is open
(see :mod:`precache.service.retirement`). A plugin writer implements the
removal; the policy is the service's.

Extra artifacts: besides an image's full artifact, the service may make
other files for it (a delta artifact against an image the hosts hold,
see :mod:`precache.service.delta`). A server that can carry them sets
:attr:`ImageServer.carries_extra_artifacts`: the service asks it where
to write the file (:meth:`ImageServer.extra_artifact_path`), writes it
there once, and then calls :meth:`ImageServer.serve_extra` on every
run, as :meth:`ImageServer.serve` for the full artifact. The server
publishes the file through the same transports as the full artifact
(its own torrent, a Swift object, a URL of the web server) and returns
the source dicts describing them; the service turns them into sources
of its own kind (a ``delta`` source names its transport in
``transport``). The server removes extra artifacts with the image's
others in :meth:`ImageServer.retire`, and keeps those of the image's
current version when that version is served again.
"""

import abc
import collections

from precache.common import plugin


#: An extra artifact of an image, written by the service.
#:
#: ``name``: its file name, unique among the image's artifacts, starting
#: with the first 16 hex digits of the image's hash (the prefix of the
#: version it belongs to) and never with a dot; ``path``: where the file
#: is (:meth:`ImageServer.extra_artifact_path`); ``compression``,
#: ``size``, ``hash_algo`` and ``hash_value``: what travels, as in a
#: source dict.
ExtraArtifact = collections.namedtuple(
    'ExtraArtifact', ('name', 'path', 'compression', 'size', 'hash_algo',
                      'hash_value'))


class ImageServer(plugin.Plugin, metaclass=abc.ABCMeta):
    """Makes a fetched image available to the agents.

    :param conf: the process's ConfigOpts.
    """

    #: True when the server needs the image's bytes in the staging area;
    #: a server that lets agents download from elsewhere (e.g. Glance)
    #: sets it to False and the service skips the fetch.
    needs_local_copy = True

    #: True when the server publishes extra artifacts of an image
    #: (:meth:`extra_artifact_path`, :meth:`serve_extra`); the service
    #: makes none for a server that leaves it False.
    carries_extra_artifacts = False

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

    def extra_artifact_path(self, image, name):
        """Return the local path to write the extra artifact ``name`` to.

        The service writes the file there (by atomic rename), and may
        keep files of its own beside it whose names start with a dot (a
        record of the file's size and hash): the server must not publish
        those, and removes them with the image's artifacts. Called after
        :meth:`serve` returned for ``image``.

        :param image: the :class:`precache.objects.image.ImageRecord`.
        :param name: the artifact's file name (see :data:`ExtraArtifact`).
        :returns: an absolute path; its directory exists.
        :raises ServeFailed: the server cannot take the file.
        :raises NotImplementedError: :attr:`carries_extra_artifacts` is
            False (the default).
        """
        raise NotImplementedError(
            'the %s server carries no extra artifacts' % self.name)

    def serve_extra(self, image, artifact):
        """Publish an extra artifact of ``image``; describe its download.

        Like :meth:`serve`: idempotent and cheap when the artifact is
        already published unchanged, as it is called on every run.

        :param image: the :class:`precache.objects.image.ImageRecord`.
        :param artifact: an :data:`ExtraArtifact`, written at
            :meth:`extra_artifact_path`.
        :returns: the list of source dicts (see
            :mod:`precache.objects.meta`) through which agents download
            the artifact, most preferred first, as :meth:`serve` returns
            for the full artifact: each names its ``method`` (the
            transport) and carries the artifact's ``compression``,
            ``size``, ``hash_algo`` and ``hash_value``.
        :raises ServeFailed: the artifact could not be published.
        :raises NotImplementedError: :attr:`carries_extra_artifacts` is
            False (the default).
        """
        raise NotImplementedError(
            'the %s server carries no extra artifacts' % self.name)

    def retire(self, image_id):
        """Remove what was published for an image no longer served.

        Called by the service (see :mod:`precache.service.retirement`)
        once no agent should fetch the image any more: its files, torrents
        or objects can go. Must be idempotent (it is called again after a
        failure, and by a new service instance for images an earlier one
        retired) and must not fail when nothing was published. Extra
        artifacts (:meth:`serve_extra`) go too. Not called
        while :meth:`serve` runs for the same image. The default does
        nothing.

        :param image_id: the image's id.
        :raises Exception: anything; the service logs it and calls again
            at its next run.
        """
