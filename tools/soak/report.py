"""The soak's output: tables over time and per process, and its JSON."""

import json

MiB = 1024 * 1024
#: How many points of time the timeline table shows at most.
TIMELINE_POINTS = 8
_STATS = ('start', 'min', 'max', 'end')


def _mib(value):
    return '%.1f' % (value / MiB)


def process_table(summaries):
    """Per incarnation: RSS (MiB) and fds at start, min, max, end."""
    header = ('process', 'pid', 'seconds', 'rss start/min/max/end MiB',
              'fds start/min/max/end', 'verdict')
    rows = [header]
    for s in summaries:
        rows.append((
            s['name'], str(s['pid']), '%.0f' % s['seconds'],
            '/'.join(_mib(s['rss'][k]) for k in _STATS),
            '/'.join(str(s['fds'][k]) for k in _STATS),
            s['verdict']))
    return _format(rows)


def timeline_table(samples, points=TIMELINE_POINTS):
    """RSS MiB/fds of every process at up to ``points`` sampling times."""
    if not samples:
        return '(no samples)'
    start = min(s.time for s in samples)
    times = sorted({s.time for s in samples})
    step = max(1, (len(times) - 1) // max(points - 1, 1))
    chosen = times[::step]
    if chosen[-1] != times[-1]:
        chosen.append(times[-1])
    names = sorted({s.name for s in samples})
    at = {(s.time, s.name): s for s in samples}
    rows = [('t (s)',) + tuple(names)]
    for t in chosen:
        rows.append(('%.0f' % (t - start),) + tuple(
            '%s/%d' % (_mib(at[t, n].rss), at[t, n].fds)
            if (t, n) in at else '-' for n in names))
    return _format(rows)


def rounds_table(rounds):
    """One line per round: fault, target, convergence and recovery."""
    rows = [('cycle', 'fault', 'target', 'converged', 'seconds',
             'recovery s', 'notes')]
    for r in rounds:
        notes = []
        if r.get('stop_seconds') is not None:
            notes.append('stopped in %.1fs' % r['stop_seconds'])
        if r.get('orphans'):
            notes.append('orphans %s' % r['orphans'])
        if r.get('problems'):
            notes.append(json.dumps(r['problems'], sort_keys=True))
        rows.append((str(r['cycle']), r['fault'], r.get('target') or '-',
                     'yes' if r['converged'] else 'NO',
                     '%.1f' % r['seconds'],
                     '%.1f' % r['recovery_seconds']
                     if r.get('recovery_seconds') is not None else '-',
                     '; '.join(notes)))
    return _format(rows)


def _format(rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return '\n'.join('  '.join(cell.ljust(w) for cell, w in zip(row, widths))
                     .rstrip() for row in rows)


def to_json(result):
    """The whole result as indented JSON text."""
    return json.dumps(result, indent=2, sort_keys=True)
