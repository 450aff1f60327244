"""Shared pieces of the tests of the service's state.

:class:`StateTestCase` gives each test a real, migrated database (an sqlite
file in the test's temporary directory unless :meth:`make_db` is
overridden, as the functional tests do for MariaDB and PostgreSQL), and
helpers that put images and hosts into it at chosen times.
"""

import datetime
import hashlib
import os

from precache.db import api as db_api
from precache.objects import image as image_mod
from precache.objects import meta as meta_mod
from precache.tests import base

#: Every test's clock starts here (naive UTC, whole seconds: MySQL's
#: DATETIME keeps no fraction).
T0 = datetime.datetime(2026, 11, 2, 8, 0, 0)


def at(seconds):
    """``T0`` plus ``seconds``."""
    return T0 + datetime.timedelta(seconds=seconds)


def record(image_id, lister='fake', data=None, name=None):
    """An ImageRecord listed by ``lister``."""
    data = data if data is not None else image_id.encode()
    return image_mod.ImageRecord(
        id=image_id, name=name or 'image ' + image_id, disk_format='raw',
        size=len(data), os_hash_algo='sha512',
        os_hash_value=hashlib.sha512(data).hexdigest(), listed_by=[lister])


def make_meta(image_id, targets=None, generation=1, pin_until=None):
    """A valid meta for ``image_id``."""
    return meta_mod.build(
        record(image_id),
        [{'method': 'http', 'url': 'http://origin/' + image_id,
          'compression': 'zstd', 'size': 3}],
        targets, pin_until=pin_until, generation=generation,
        epoch=base.EPOCH)


class FakeAgentAPI(object):
    """Records casts as ``(image_id, generation, host)``; None = fanout."""

    def __init__(self):
        self.casts = []
        #: The metas as cast, in the order of ``casts``.
        self.metas = []

    def cache(self, context, image_id, meta, host=None):
        self.casts.append((image_id, meta['generation'], host))
        self.metas.append(meta)

    def hosts(self, image_id=None):
        """Names of the hosts of the targeted casts (of one image)."""
        return sorted(host for cast_image, _, host in self.casts
                      if host is not None and
                      image_id in (None, cast_image))

    def fanouts(self):
        return [image_id for image_id, _, host in self.casts
                if host is None]


class FakeNotifier(object):
    """A RoundNotifier that keeps what it would send."""

    def __init__(self):
        self.sent = []

    def start(self, context, round_id, image_id, generation, kind, hosts):
        self.sent.append(('start', dict(
            round_id=round_id, image_id=image_id, generation=generation,
            kind=kind, hosts=sorted(hosts))))

    def progress(self, context, answer, host, image_id, status, reason,
                 detail=None):
        self.sent.append(('progress', dict(
            round_id=answer['id'], index=answer['index'],
            total=answer['total'], host=host, image_id=image_id,
            status=status, reason=reason, detail=detail)))

    def end(self, context, round_row, unanswered=()):
        self.sent.append(('end', dict(
            round_id=round_row['id'], image_id=round_row['image_id'],
            total=round_row['total'], answered=round_row['answered'],
            cached=round_row['cached'], failed=round_row['failed'],
            unanswered=sorted(unanswered))))

    def events(self, kind):
        return [payload for event, payload in self.sent if event == kind]


class StateTestCase(base.TestCase):
    """A test with a StateDB whose schema is at head."""

    def setUp(self):
        super().setUp()
        self.db = db_api.StateDB(self.make_db())
        self.addCleanup(self.db.engine.dispose)
        self.db.sync()

    def make_db(self):
        """Return the URL of a new, empty database."""
        return 'sqlite:///' + os.path.join(self.tempdir, 'state.sqlite')

    # Images ---------------------------------------------------------------

    def add_image(self, image_id, now=None, targets=None, generation=1,
                  lister='fake'):
        """List ``image_id`` and record it as served with a meta."""
        now = now or T0
        self.db.record_listing([record(image_id, lister)], complete=False,
                               now=now)
        meta = make_meta(image_id, targets, generation)
        self.db.record_served(image_id, meta, now=now)
        return self.db.get_image(image_id)

    # Hosts ----------------------------------------------------------------

    def beat(self, host, now, inventory=(), labels=(), down_time=180,
             grace=120):
        """Record a heartbeat of ``host`` at ``now``; return came_up.

        :param inventory: image ids, or inventory entry dicts.
        """
        status = {'version': '1.0', 'labels': list(labels),
                  'disk': {'total': 1000, 'free': 600, 'cache_bytes': 400},
                  'inventory': [i if isinstance(i, dict) else self.entry(i)
                                for i in inventory]}
        return self.db.record_heartbeat(
            host, status, now - datetime.timedelta(seconds=down_time),
            now - datetime.timedelta(seconds=grace), now)

    @staticmethod
    def entry(image_id, by_name=False):
        """An inventory entry; ``by_name``: only the sha1 file name."""
        name = image_mod.nova_cache_name(image_id)
        return {'name': name, 'image_id': None if by_name else image_id,
                'size': 3, 'allocated': 4096, 'mtime': 0}

    def host_ids(self):
        return {h['name']: h['id'] for h in self.db.list_hosts()}

    def status(self, image_id, host):
        row = self.db.image_hosts(image_id).get(host)
        return row and row['status']
