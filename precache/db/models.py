"""The service's state: hosts, images and which image is where.

Timestamps are naive ``DATETIME`` values in UTC.
"""

from oslo_db.sqlalchemy import models
from oslo_db.sqlalchemy import types as db_types
import sqlalchemy as sa
from sqlalchemy import orm

BASE = orm.declarative_base()


class PrecacheBase(models.ModelBase, models.TimestampMixin):
    """Adds ``created_at``/``updated_at`` to every table."""


class Host(BASE, PrecacheBase):
    """A compute host running precache-agent."""

    __tablename__ = 'hosts'
    __table_args__ = (
        sa.Index('hosts_last_heartbeat_idx', 'last_heartbeat'),
    )

    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    name = sa.Column(sa.String(255), nullable=False, unique=True)
    labels = sa.Column(db_types.JsonEncodedList(), nullable=True)
    agent_version = sa.Column(sa.String(64), nullable=True)
    last_heartbeat = sa.Column(sa.DateTime, nullable=True)
    disk_total = sa.Column(sa.BigInteger, nullable=True)
    disk_free = sa.Column(sa.BigInteger, nullable=True)
    cache_bytes = sa.Column(sa.BigInteger, nullable=True)


class Image(BASE, PrecacheBase):
    """An image precache distributes (listed or requested)."""

    __tablename__ = 'images'

    id = sa.Column(sa.String(255), primary_key=True)
    name = sa.Column(sa.String(255), nullable=True)
    disk_format = sa.Column(sa.String(32), nullable=True)
    size = sa.Column(sa.BigInteger, nullable=True)
    #: Names of the listers that returned it in the last listing.
    listed_by = sa.Column(db_types.JsonEncodedList(), nullable=True)
    #: Returned by the last complete listing.
    listed = sa.Column(sa.Boolean, nullable=False, default=False)
    first_seen = sa.Column(sa.DateTime, nullable=True)
    last_seen = sa.Column(sa.DateTime, nullable=True)
    #: Asked for with ``precache cache`` and not released.
    requested = sa.Column(sa.Boolean, nullable=False, default=False)
    pinned_until = sa.Column(sa.DateTime, nullable=True)
    #: The hosts that get it: ``{'hosts': [...], 'labels': [...]}``, or
    #: None for every host (its listers' and its request's targets).
    targets = sa.Column(db_types.JsonEncodedDict(), nullable=True)
    #: The targets of the on-demand request.
    request_targets = sa.Column(db_types.JsonEncodedDict(), nullable=True)
    #: The meta last sent to agents (None until served once).
    meta = sa.Column(db_types.JsonEncodedDict(mysql_as_long=True),
                     nullable=True)
    generation = sa.Column(sa.BigInteger, nullable=True)
    served_at = sa.Column(sa.DateTime, nullable=True)
    #: Why the last fetch or serve failed (None when it worked).
    error = sa.Column(sa.Text, nullable=True)
    #: Fetches or serves that failed in a row (0 after a success).
    failures = sa.Column(sa.Integer, nullable=False, default=0,
                         server_default='0')
    #: When the last of them failed.
    failed_at = sa.Column(sa.DateTime, nullable=True)
    #: The image is not tried again before this time (exponential
    #: backoff), unless it changes or is requested on demand.
    retry_at = sa.Column(sa.DateTime, nullable=True)
    #: The fingerprint (hash, size, updated_at) of the version that
    #: failed: a listing with another one is tried at once.
    failed_version = sa.Column(sa.String(64), nullable=True)
    #: Set while the service tries again an image that failed.
    retrying_since = sa.Column(sa.DateTime, nullable=True)


class HostImage(BASE, PrecacheBase):
    """Where one image stands on one host."""

    __tablename__ = 'host_images'
    __table_args__ = (
        sa.Index('host_images_image_status_idx', 'image_id', 'status'),
    )

    host_id = sa.Column(sa.Integer, sa.ForeignKey('hosts.id',
                                                  ondelete='CASCADE'),
                        primary_key=True)
    image_id = sa.Column(sa.String(255), sa.ForeignKey('images.id',
                                                       ondelete='CASCADE'),
                         primary_key=True)
    status = sa.Column(sa.String(16), nullable=False)
    code = sa.Column(sa.String(64), nullable=True)
    reason = sa.Column(sa.Text, nullable=True)
    #: Casts sent since the image was last present on the host.
    attempts = sa.Column(sa.Integer, nullable=False, default=0)
    bytes = sa.Column(sa.BigInteger, nullable=True)
    seconds = sa.Column(sa.Float, nullable=True)
    source = sa.Column(sa.String(32), nullable=True)
    #: The image the host assembled this one from (``source`` ``delta``).
    delta_base = sa.Column(sa.String(255), nullable=True)
    generation = sa.Column(sa.BigInteger, nullable=True)
    round_id = sa.Column(sa.Integer, nullable=True)
    cast_at = sa.Column(sa.DateTime, nullable=True)
    reported_at = sa.Column(sa.DateTime, nullable=True)
    #: No new cast before this time (exponential backoff).
    next_attempt_at = sa.Column(sa.DateTime, nullable=True)


class Round(BASE, PrecacheBase):
    """One distribution round of an image: a batch of casts.

    Its notifications are ``precache.cache.start`` when it opens, one
    ``precache.cache.progress`` per host that answers and
    ``precache.cache.end`` when every host answered or it timed out.
    """

    __tablename__ = 'rounds'
    __table_args__ = (
        sa.Index('rounds_image_ended_idx', 'image_id', 'ended_at'),
    )

    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    image_id = sa.Column(sa.String(255), sa.ForeignKey('images.id',
                                                       ondelete='CASCADE'),
                         nullable=False)
    generation = sa.Column(sa.BigInteger, nullable=True)
    #: ``fanout`` (every host) or ``targeted`` (repairs, start-ups).
    kind = sa.Column(sa.String(16), nullable=False)
    total = sa.Column(sa.Integer, nullable=False, default=0)
    answered = sa.Column(sa.Integer, nullable=False, default=0)
    cached = sa.Column(sa.Integer, nullable=False, default=0)
    failed = sa.Column(sa.Integer, nullable=False, default=0)
    started_at = sa.Column(sa.DateTime, nullable=False)
    ended_at = sa.Column(sa.DateTime, nullable=True)


class Epoch(BASE, PrecacheBase):
    """The database's epoch: one row, written when the schema is created.

    Every meta carries it beside its generation. A database created anew
    (or replaced) has a new epoch, which agents follow at once instead of
    comparing generations across databases.
    """

    __tablename__ = 'epoch'

    #: Always 1: there is one row.
    id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
    #: 32 hex digits.
    epoch = sa.Column(sa.String(32), nullable=False)
