"""What a process holds now, read from /proc: resident memory and fds.

A precache daemon is a launcher process and a worker it forks;
:func:`process_tree` finds both from the launcher's pid, and
:class:`Sampler` samples every process of the trees it is given, in a
thread, every ``interval`` seconds. A process that exits between two reads
is skipped, not an error.
"""

import collections
import os
import threading
import time

#: One reading of one process.
Sample = collections.namedtuple('Sample', 'time name pid rss fds')


def rss_bytes(pid):
    """Resident set size of ``pid`` in bytes (``VmRSS``), or None."""
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None  # a zombie has no VmRSS


def open_fds(pid):
    """How many file descriptors ``pid`` has open, or None."""
    try:
        return len(os.listdir('/proc/%d/fd' % pid))
    except OSError:
        return None


def children(pid):
    """The pids of ``pid``'s children (every thread's), or []."""
    found = []
    try:
        tasks = os.listdir('/proc/%d/task' % pid)
    except OSError:
        return found
    for tid in tasks:
        try:
            with open('/proc/%d/task/%s/children' % (pid, tid)) as f:
                found.extend(int(p) for p in f.read().split())
        except (OSError, ValueError):
            continue
    return found


def process_tree(pid):
    """``pid`` and its descendants, parents before children."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        tree.append(current)
        todo.extend(children(current))
    return tree


def is_running(pid):
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != 'Z'


def sample_tree(name, pid, now=None):
    """Samples of ``pid`` (named ``name``) and of its descendants.

    The launcher is ``name``, its first descendant ``name/worker``; later
    ones (a worker's short-lived children, e.g. ``qemu-img``) are
    ``name/child-1``, ``name/child-2``...
    """
    now = time.time() if now is None else now
    samples = []
    for index, member in enumerate(process_tree(pid)):
        rss, fds = rss_bytes(member), open_fds(member)
        if rss is None or fds is None:
            continue
        label = name if index == 0 else (
            '%s/worker' % name if index == 1 else
            '%s/child-%d' % (name, index - 1))
        samples.append(Sample(now, label, member, rss, fds))
    return samples


class Sampler(object):
    """Samples named process trees in a thread.

    :param roots: ``roots()`` returns ``{name: launcher pid}`` now (a
        restarted daemon has a new pid; a stopped one is left out).
    :param interval: seconds between two rounds of samples.
    """

    def __init__(self, roots, interval=5.0):
        self.roots = roots
        self.interval = interval
        self.samples = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def sample_now(self):
        """Take one round of samples (also called by the thread)."""
        now = time.time()
        taken = []
        for name, pid in sorted(self.roots().items()):
            taken.extend(sample_tree(name, pid, now))
        with self._lock:
            self.samples.extend(taken)
        return taken

    def snapshot(self):
        with self._lock:
            return list(self.samples)

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='soak-sampler')
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.sample_now()
            self._stop.wait(self.interval)

    def stop(self):
        """Stop the thread after a last round of samples."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.sample_now()
