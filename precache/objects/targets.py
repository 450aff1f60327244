"""Which hosts an image's ``targets`` select: one rule for both ends.

The service uses it to decide whom to cast to and what a host's
``desired`` set holds; the agent uses it to ignore casts that are not
meant for it. ``targets`` is ``meta['targets']``: ``None`` (every host) or
a dict with optional ``hosts`` (names or shell-style globs, matched
case-sensitively) and ``labels`` (aggregate or availability zone names the
agents declare in ``[agent] labels``).
"""

import fnmatch
import re


class TargetMatcher(object):
    """Tells which hosts an image's ``targets`` select.

    :param targets: None (every host) or ``{'hosts': [names or globs],
        'labels': [...]}``; a host is selected when no target is given,
        when it matches a host pattern, or when it carries a label.
    """

    def __init__(self, targets):
        targets = targets or {}
        patterns = targets.get('hosts') or []
        self.labels = set(targets.get('labels') or [])
        self.everyone = not patterns and not self.labels
        self._regex = (re.compile('|'.join(fnmatch.translate(p)
                                           for p in patterns))
                       if patterns else None)

    def matches(self, name, labels):
        """Whether the host ``name`` carrying ``labels`` is selected."""
        if self.everyone:
            return True
        if self._regex is not None and self._regex.match(name):
            return True
        return bool(self.labels.intersection(labels or ()))


def is_targeted(targets, host, labels):
    """Tell whether a request with ``targets`` concerns ``host``.

    :param targets: ``meta['targets']``.
    :param host: the host's name.
    :param labels: the host's labels.
    """
    return TargetMatcher(targets).matches(host, labels)


#: Targets selecting no host (the neutral element of :func:`union`).
NO_ONE = object()


def union(first, second):
    """Union of two targets; None (every host) absorbs everything.

    :param first: targets, or :data:`NO_ONE`.
    :param second: targets, or :data:`NO_ONE`.
    """
    if first is None or second is None:
        return None
    if first is NO_ONE:
        return second
    if second is NO_ONE:
        return first
    return {key: sorted(set(first.get(key) or []) |
                        set(second.get(key) or []))
            for key in ('hosts', 'labels')}
