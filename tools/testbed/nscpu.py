"""CPU time spent by the processes of a testbed's namespaces.

The machine's utilisation (``/proc/stat``) says whether the CPU limited a
round, whoever used it; this module says how much of it the testbed's own
processes took: every process whose network namespace is one of the
testbed's (the agents, the origin, the Squids, RabbitMQ and the benchmark
itself in the control node). A process's CPU time is its user and system
time plus that of the children it waited for (``qemu-img`` started by an
agent), read from ``/proc/<pid>/stat``.

:class:`NamespaceCpu` samples once a second; a process that starts and
ends between two samples (not waited for by a sampled parent) is missed,
and so is the last interval of one that exits: the figure is a lower
bound, given for information next to the machine's.
"""

import os
import threading
import time

#: Clock ticks per second of /proc/<pid>/stat's times.
TICKS = os.sysconf('SC_CLK_TCK')


def namespace_inodes(names):
    """Return the inodes of the named network namespaces that exist."""
    inodes = set()
    for name in names:
        try:
            inodes.add(os.stat('/run/netns/%s' % name).st_ino)
        except OSError:
            pass
    return inodes


def parse_stat(text):
    """Return ``(start tick, CPU ticks)`` from a ``/proc/<pid>/stat`` line.

    CPU ticks are utime + stime + cutime + cstime. The command name (in
    parentheses) may hold spaces and parentheses: fields are counted from
    the last ``)``.
    """
    fields = text[text.rindex(')') + 2:].split()
    # fields[0] is the state (field 3 of proc(5)).
    cpu = sum(int(v) for v in fields[11:15])
    return int(fields[19]), cpu


def processes_in(inodes, proc='/proc'):
    """Yield ``((pid, start tick), CPU ticks)`` of processes in ``inodes``."""
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            if os.stat('%s/%s/ns/net' % (proc, entry)).st_ino not in inodes:
                continue
            with open('%s/%s/stat' % (proc, entry)) as f:
                start, cpu = parse_stat(f.read())
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        yield (int(entry), start), cpu


def uptime_ticks():
    with open('/proc/uptime') as f:
        return int(float(f.read().split()[0]) * TICKS)


class NamespaceCpu(object):
    """CPU seconds used by the processes of some namespaces while active.

    :param names: the network namespaces' names.
    :param interval: seconds between two samples.
    :param inodes: further namespaces, by inode.

    Used as a context manager; afterwards :attr:`seconds` is the CPU time
    used in the window and :meth:`percent` that time as a share of the
    machine's capacity over the window.
    """

    def __init__(self, names, interval=1.0, inodes=()):
        self.names = list(names)
        self.inodes = set(inodes)
        self.interval = interval
        self.seconds = 0.0
        self.wall = 0.0
        self._base = {}
        self._last = {}
        self._stop = threading.Event()
        self._thread = None

    def _sample(self):
        for key, cpu in processes_in(self._inodes):
            if key not in self._base:
                # Started inside the window: all of its time counts.
                self._base[key] = cpu if key[1] < self._start_tick else 0
            self._last[key] = cpu

    def __enter__(self):
        self._inodes = self.inodes | namespace_inodes(self.names)
        self._start_tick = uptime_ticks()
        self._started = time.monotonic()
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()
        self.wall = time.monotonic() - self._started
        self.seconds = sum(self._last[k] - self._base[k]
                           for k in self._last) / TICKS

    def percent(self, cpus=None):
        """The CPU time as a percentage of all CPUs over the window."""
        cpus = cpus or os.cpu_count()
        return 100.0 * self.seconds / (self.wall * cpus) if self.wall else 0.0
