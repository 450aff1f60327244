"""Deciding whether a cache request is meant for this host."""

import fnmatch


def is_targeted(targets, host, labels):
    """Tell whether a request with ``targets`` concerns this host.

    :param targets: ``meta['targets']``: ``None`` (every host) or a dict
        with optional ``hosts`` (names or shell-style globs) and ``labels``.
    :param host: this host's name.
    :param labels: this host's labels.
    :returns: True when no target is given, the host matches one of the
        host patterns, or carries one of the labels.
    """
    if not targets:
        return True
    patterns = targets.get('hosts') or []
    wanted_labels = set(targets.get('labels') or [])
    if not patterns and not wanted_labels:
        return True
    if any(fnmatch.fnmatchcase(host, pattern) for pattern in patterns):
        return True
    return bool(wanted_labels.intersection(labels))
