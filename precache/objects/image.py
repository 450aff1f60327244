"""The image record that flows through the service's pipeline.

Image ids also arrive from the bus, i.e. from anyone holding its
credentials: :func:`is_valid_id` says whether a value may be an image id
at all and :func:`quote_id` renders any value safely for a log line or a
report.
"""

import dataclasses
import hashlib
import re

# Fields of a Glance image that precache keeps; the rest is ignored.
GLANCE_FIELDS = ('id', 'name', 'disk_format', 'container_format', 'size',
                 'virtual_size', 'os_hash_algo', 'os_hash_value', 'checksum',
                 'updated_at', 'owner', 'visibility', 'status')

#: Longest image id accepted (Glance's are 36-character UUIDs).
MAX_ID_LENGTH = 255
#: An image id: printable ASCII but "/" and "\\", as a JSON Schema
#: pattern (``\\Z``, not ``$``, which would accept a trailing newline).
ID_PATTERN = r'^[ -.0-\[\]-~]{1,%d}\Z' % MAX_ID_LENGTH
_ID_RE = re.compile(ID_PATTERN)
#: Characters of an id kept by :func:`quote_id`.
QUOTE_LIMIT = 80


@dataclasses.dataclass
class ImageRecord(object):
    """What precache knows of one image.

    ``size``, ``os_hash_algo``/``os_hash_value`` and ``checksum`` describe
    the image's bytes as Glance stores them (a qcow2 image's hash is the
    hash of the qcow2 file). Listers return these records; fetchers,
    servers and agents verify bytes against them.
    """

    id: str
    name: str = None
    disk_format: str = None
    container_format: str = None
    size: int = None
    virtual_size: int = None
    os_hash_algo: str = None
    os_hash_value: str = None
    checksum: str = None
    updated_at: str = None
    owner: str = None
    visibility: str = None
    status: str = 'active'
    #: Names of the listers that returned this image.
    listed_by: list = dataclasses.field(default_factory=list)

    @classmethod
    def from_glance(cls, image, lister=None):
        """Build a record from a glanceclient image (a dict-like object)."""
        fields = {name: image.get(name) for name in GLANCE_FIELDS}
        record = cls(**fields)
        if lister:
            record.listed_by.append(lister)
        return record

    @classmethod
    def from_dict(cls, data):
        """Build a record from :meth:`to_dict` output (e.g. from meta)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self):
        """Return a JSON-serialisable dict of the record."""
        return dataclasses.asdict(self)

    @property
    def verification(self):
        """Return ``(algorithm, expected hex digest)`` to verify bytes with.

        Glance's multihash is preferred; the md5 ``checksum`` is used only
        when there is no multihash. ``(None, None)`` when there is neither.
        """
        if self.os_hash_algo and self.os_hash_value:
            return self.os_hash_algo, self.os_hash_value
        if self.checksum:
            return 'md5', self.checksum
        return None, None

    @property
    def version_key(self):
        """A value that changes whenever the image's bytes change."""
        algo, value = self.verification
        return '%s:%s:%s' % (algo, value, self.size)

    @property
    def fingerprint(self):
        """A digest that changes whenever the image changes in Glance.

        Its bytes (hash and size) or its ``updated_at``: the service
        tries at once a new version of an image whose last version it
        failed to fetch.
        """
        key = '%s:%s' % (self.version_key, self.updated_at)
        return hashlib.sha256(key.encode('utf-8')).hexdigest()

    @property
    def cache_name(self):
        """The file name Nova's libvirt driver uses for this image."""
        return nova_cache_name(self.id)


def nova_cache_name(image_id):
    """Return ``sha1(image_id)``, the base file name Nova's libvirt uses."""
    return hashlib.sha1(image_id.encode('utf-8')).hexdigest()


def is_valid_id(value):
    """Whether ``value`` may be an image id (see :data:`ID_PATTERN`)."""
    return isinstance(value, str) and _ID_RE.match(value) is not None


def quote_id(value, limit=QUOTE_LIMIT):
    """Render an untrusted image id for a log line or a report.

    A valid id of up to ``limit`` characters is returned as it is; any
    other string gets its non-printable characters escaped
    (``\\n``, ``\\x1b``...) and is cut to ``limit`` characters plus
    ``...``; a value that is not a string is named by its type, an empty
    one is ``<empty>``.

    :returns: a printable ASCII string.
    """
    if not isinstance(value, str):
        return '<%s>' % type(value).__name__
    if not value:
        return '<empty>'
    if len(value) <= limit and is_valid_id(value):
        return value
    quoted = value[:limit].encode('ascii', 'backslashreplace').decode()
    quoted = ''.join(c if ' ' <= c <= '~' else '\\x%02x' % ord(c)
                     for c in quoted)
    if len(value) > limit:
        quoted += '...'
    return quoted[:4 * limit + 3]
