"""The process group of precache's processes.

Why this module exists: oslo.messaging's RabbitMQ queue manager
(``[oslo_messaging_rabbit] use_queue_manager``, on in precache) names its
queues after the *process group*: each time it builds a queue name it
reads ``/proc/<process group id>/stat`` for the start time of the group's
leader. When that leader has exited (a daemon started with
``(precache-agent ... &)`` from a script that ended, by a shell or a test
runner that went away) the file does not exist, ``FileNotFoundError``
escapes from oslo.messaging and the daemon dies at start, or later, at its
next reconnection.

:func:`ensure_own_process_group` therefore makes the process the leader of
a new session and process group (``setsid``) when the leader of its group
is gone, or when the process is not in the foreground of a terminal: the
leader of a background group (a script, a supervisor's shell) may exit at
any time afterwards. A process in the foreground of a terminal keeps its
group, so that Ctrl-C (SIGINT sent to the terminal's foreground group)
still reaches it.

oslo.service's threading launcher (cotyledon) also calls ``setsid`` in
the daemon's master process, but only when the service is launched:
whatever uses oslo.messaging before, and processes without a launcher
(the tests, which run RPC servers in-process), are not covered by it.
"""

import os

#: Where the kernel shows a process; oslo.messaging reads its ``stat``.
PROC = '/proc'


def _leader_alive(pgid):
    """Whether the leader of process group ``pgid`` still exists."""
    if os.path.isdir(os.path.join(PROC, 'self')):
        return os.path.exists(os.path.join(PROC, str(pgid), 'stat'))
    try:
        os.kill(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _terminal_foreground_group():
    """The foreground process group of our terminal, or None.

    None when the process has no controlling terminal (started by
    systemd, a container runtime, ``setsid``...) or it cannot be told.
    """
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                return os.tcgetpgrp(fd)
        except OSError:
            pass
    try:
        fd = os.open('/dev/tty', os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return None
    try:
        return os.tcgetpgrp(fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def needs_own_process_group():
    """Whether :func:`ensure_own_process_group` would change the group.

    :returns: a reason (a string) to change it, or None to keep it.
    """
    pgid = os.getpgrp()
    if pgid == os.getpid():
        return None
    if not pgid:
        # No group at all (crun's "podman exec"): oslo.messaging then
        # uses the process' own pid, which exists.
        return None
    if not _leader_alive(pgid):
        return 'the leader of process group %d has exited' % pgid
    if _terminal_foreground_group() != pgid:
        return ('process group %d is not in the foreground of a terminal'
                % pgid)
    return None


def ensure_own_process_group():
    """Lead a new session and group unless that would lose Ctrl-C.

    Call it first thing in a process, before oslo.messaging builds a
    queue name, and before forking workers (they share the group).

    :returns: why the group was changed, or None when it was kept (or
        could not be changed).
    """
    reason = needs_own_process_group()
    if reason is None:
        return None
    try:
        os.setsid()
    except OSError:
        return None
    return reason
