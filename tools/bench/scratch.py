"""The work directory of a benchmark run, removed when the run ends.

A benchmark writes images, artifacts, stores and logs (a distribution
round leaves about 1.6 GB); :func:`work_dir` makes a fresh directory and
removes it when the run ends, however it ends (an exception, Ctrl-C, or
SIGTERM turned into one). A directory the user named (``--work-dir``) is
the user's: it is kept, and so is a fresh one with ``keep``.
"""

import contextlib
import os
import shutil
import tempfile

#: Big enough for images; /tmp is often a small tmpfs.
DEFAULT_PARENT = '/var/tmp'


@contextlib.contextmanager
def work_dir(given=None, prefix='precache-bench-', keep=False,
             parent=DEFAULT_PARENT):
    """Yield a work directory; remove it afterwards if it was made here.

    :param given: a directory named by the user, made if missing and
        never removed.
    :param prefix: the name prefix of a fresh directory.
    :param keep: keep a fresh directory (its path is printed).
    :param parent: where a fresh directory is made.
    """
    if given:
        os.makedirs(given, exist_ok=True)
        yield given
        return
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        yield path
    finally:
        if keep:
            print('Kept the work directory %s' % path)
        else:
            shutil.rmtree(path, ignore_errors=True)
