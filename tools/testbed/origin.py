"""The service's server side on the testbed's origin node.

Runs precache-service's own pipeline (listers, fetcher, ImageServer
plugin as configured) once, writes the ``meta`` each image would be cast
with to a JSON file (``{image id: meta}``) instead of casting it, then keeps
the ImageServer running (web server, BitTorrent seed) until SIGTERM. The
benchmark casts the meta to the agents itself, so that it controls when
and to whom.

With ``--delta-base IMAGE_ID`` (and ``[delta] enabled``), every other
image gets a delta against that one: the benchmark landed it on every
host before (the service would learn that from the hosts' inventories).

Usage (inside the origin's namespace)::

    python tools/testbed/origin.py --config-file origin.conf \\
        --meta-file meta.json [--delta-base IMAGE_ID]
"""

import json
import os
import signal
import sys
import threading

from precache import cmd
from precache.common import fileutils
from precache.common import plugin
from precache.common import rpc
from precache.db import api as db_api
from precache.objects import meta as meta_mod
from precache.service import delta
from precache.service import pipeline as pipeline_mod


class MetaRecorder(object):
    """The pipeline's distributor here: records what would be cast."""

    def __init__(self, epoch):
        self.epoch = epoch
        self.metas = {}

    def distribute(self, context, image, sources, targets):
        # Unsigned: the benchmark signs what it casts (see cluster.Round).
        self.metas[image.id] = meta_mod.build(image, sources, targets,
                                              epoch=self.epoch)
        return self.metas[image.id], True

    def reconcile(self, context):
        return None


class HeldEverywhere(delta.DeltaPublisher):
    """Deltas against one image that every host of the testbed holds."""

    def __init__(self, conf, db, server, base_id):
        super().__init__(conf, db, server)
        self.base_id = base_id

    def choose_base(self, image):
        if image.id == self.base_id:
            return None
        known = self.indexes.load(self.base_id)
        return (self.base_id,) + known if known else None


def _take(argv, flag):
    """Remove ``flag VALUE`` from ``argv``; return VALUE or None."""
    if flag not in argv:
        return None
    index = argv.index(flag)
    value = argv[index + 1]
    del argv[index:index + 2]
    return value


def main(argv):
    argv = list(argv)
    meta_file = _take(argv, '--meta-file')
    delta_base = _take(argv, '--delta-base')
    conf = cmd.prepare(argv, 'precache testbed origin')
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    db = db_api.StateDB('sqlite:///%s.sqlite' % os.path.abspath(meta_file))
    db.sync()
    recorder = MetaRecorder(db.epoch())
    server = deltas = None
    if delta_base:
        server = plugin.load_plugin('precache.servers', conf.service.server,
                                    conf, option='[service] server')
        deltas = HeldEverywhere(conf, db, server, delta_base)
    pipeline = pipeline_mod.Pipeline(conf, db, recorder, server=server,
                                     deltas=deltas)
    pipeline.start()
    try:
        outcomes = pipeline.run(rpc.get_context())
        failed = [o for o in outcomes if o.error]
        if failed or not outcomes:
            print('origin: nothing served: %s'
                  % [(o.image_id, o.error) for o in failed], file=sys.stderr)
            return 1
        with fileutils.atomic_write(os.path.abspath(meta_file)) as out:
            out.write(json.dumps(recorder.metas).encode())
        while not stop.wait(1):
            pass
    finally:
        pipeline.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
