"""The service's server side on the testbed's origin node.

Runs precache-service's own pipeline (listers, fetcher, ImageServer
plugin as configured) once, writes the ``meta`` each image would be cast
with to a JSON file (``{image id: meta}``) instead of casting it, then keeps
the ImageServer running (web server, BitTorrent seed) until SIGTERM. The
benchmark casts the meta to the agents itself, so that it controls when
and to whom.

Usage (inside the origin's namespace)::

    python tools/testbed/origin.py --config-file origin.conf \\
        --meta-file meta.json
"""

import json
import os
import signal
import sys
import threading

from precache import cmd
from precache.common import fileutils
from precache.common import rpc
from precache.db import api as db_api
from precache.objects import meta as meta_mod
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


def main(argv):
    meta_file = argv[argv.index('--meta-file') + 1]
    index = argv.index('--meta-file')
    conf = cmd.prepare(argv[:index] + argv[index + 2:],
                       'precache testbed origin')
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    db = db_api.StateDB('sqlite:///%s.sqlite' % os.path.abspath(meta_file))
    db.sync()
    recorder = MetaRecorder(db.epoch())
    pipeline = pipeline_mod.Pipeline(conf, db, recorder)
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
