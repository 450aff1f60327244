"""Did a process grow? Per-incarnation summaries and the growth check.

Samples (:class:`procstats.Sample`) are grouped per incarnation: one
process name and one pid (a restarted daemon is a new incarnation and is
compared with itself only). Each incarnation is summarised by its values
at start, minimum, maximum and end, and by its values at the end of its
warm-up (its first sample ``warmup`` seconds or more after its first
one). It is checked when it lived at least ``min_span`` seconds after its
warm-up: it fails when its open fds grew by more than ``fd_slack``, or its
RSS by more than ``max(rss_fraction * warm-up RSS, rss_slack)`` bytes,
from the warm-up to the end.
"""

import collections

MiB = 1024 * 1024

#: The limits of the check; see the module docstring.
Limits = collections.namedtuple(
    'Limits', 'warmup min_span fd_slack rss_fraction rss_slack')

DEFAULT_LIMITS = Limits(warmup=60.0, min_span=60.0, fd_slack=8,
                        rss_fraction=0.25, rss_slack=16 * MiB)


def incarnations(samples):
    """``{(name, pid): [samples in time order]}``."""
    series = collections.OrderedDict()
    for sample in sorted(samples, key=lambda s: s.time):
        series.setdefault((sample.name, sample.pid), []).append(sample)
    return series


def _stats(values):
    return {'start': values[0], 'min': min(values), 'max': max(values),
            'end': values[-1]}


def summarise(name, pid, series, limits=DEFAULT_LIMITS):
    """The summary of one incarnation and its verdict, as a dict.

    ``verdict`` is ``ok``, ``grew`` (with ``problems``) or ``short``
    (too short-lived to judge).
    """
    first, last = series[0], series[-1]
    warm = next((s for s in series if s.time - first.time >= limits.warmup),
                None)
    summary = {
        'name': name, 'pid': pid, 'samples': len(series),
        'first': first.time, 'last': last.time,
        'seconds': round(last.time - first.time, 1),
        'rss': _stats([s.rss for s in series]),
        'fds': _stats([s.fds for s in series]),
        'warm': None, 'verdict': 'short', 'problems': [],
    }
    if warm is None or last.time - warm.time < limits.min_span:
        return summary
    summary['warm'] = {'time': warm.time, 'rss': warm.rss, 'fds': warm.fds}
    problems = []
    fd_growth = last.fds - warm.fds
    if fd_growth > limits.fd_slack:
        problems.append('open fds grew by %d (%d -> %d) after the warm-up, '
                        'more than %d' % (fd_growth, warm.fds, last.fds,
                                          limits.fd_slack))
    rss_growth = last.rss - warm.rss
    allowed = max(limits.rss_fraction * warm.rss, limits.rss_slack)
    if rss_growth > allowed:
        problems.append('RSS grew by %.1f MiB (%.1f -> %.1f MiB) after the '
                        'warm-up, more than %.1f MiB'
                        % (rss_growth / MiB, warm.rss / MiB, last.rss / MiB,
                           allowed / MiB))
    summary['problems'] = problems
    summary['verdict'] = 'grew' if problems else 'ok'
    return summary


def check(samples, limits=DEFAULT_LIMITS):
    """Summaries of every incarnation, in order of first sample."""
    return [summarise(name, pid, series, limits)
            for (name, pid), series in incarnations(samples).items()]
