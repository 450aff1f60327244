"""Verifying image bytes against what Glance says of them."""

import hashlib

from precache.common import exception

#: Hashes that alone guard what lands: once the image's bytes are checked
#: against one of them, a source's hash of its artifact adds nothing.
STRONG_ALGORITHMS = frozenset(('sha256', 'sha384', 'sha512', 'sha3_256',
                               'sha3_384', 'sha3_512', 'blake2b',
                               'blake2s'))


class Verifier(object):
    """Hash and count bytes as they stream by, then check them.

    :param image: the :class:`precache.objects.image.ImageRecord` the bytes
        belong
        to; its multihash (or md5 checksum) and size are what is expected.
    :raises NoVerifiableHash: the image has no hash at all.
    :raises HashMismatch: (from :meth:`check`).
    """

    def __init__(self, image):
        self.image = image
        self.algo, self.expected = image.verification
        if not self.expected:
            raise exception.NoVerifiableHash(image_id=image.id)
        try:
            self._hash = hashlib.new(self.algo)
        except ValueError:
            raise exception.HashMismatch(
                image_id=image.id, algo=self.algo,
                actual='(unsupported algorithm)', expected=self.expected)
        self.bytes = 0

    @property
    def strong(self):
        """True if the image's hash is in :data:`STRONG_ALGORITHMS`."""
        return self.algo.lower() in STRONG_ALGORITHMS

    def update(self, data):
        """Account for the next chunk of the image's bytes."""
        self._hash.update(data)
        self.bytes += len(data)

    def check(self):
        """Raise unless the bytes seen are the image's bytes."""
        expected_size = self.image.size
        if expected_size is not None and self.bytes != expected_size:
            raise exception.SizeMismatch(image_id=self.image.id,
                                         actual=self.bytes,
                                         expected=expected_size)
        actual = self._hash.hexdigest()
        if actual.lower() != self.expected.lower():
            raise exception.HashMismatch(image_id=self.image.id,
                                         algo=self.algo, actual=actual,
                                         expected=self.expected)


def file_digest(path, algorithm='sha512', chunk_size=8 * 1024 * 1024):
    """Return the hex digest of a file's content, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(chunk_size), b''):
            digest.update(chunk)
    return digest.hexdigest()
