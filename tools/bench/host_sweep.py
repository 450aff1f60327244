"""Run the distribution benchmark at several N and compare them.

``distribution_benchmark.py --hosts 8,16,24,48`` runs one benchmark per
N, each in a process of its own (the benchmark moves its process into
the testbed's control namespace, so one process serves one testbed) on a
testbed of its own, one after another. The rates take one value for all
N or one per N, so that the machine's CPU can be held below the ceiling
as N grows (e.g. the same total N x B_host at every N). Afterwards it
prints, for each strategy, the last host's ratio to the bound against N
with each round's CPU and validity, and writes the runs into one JSON.

Whatever happens (a failure, Ctrl-C, SIGTERM), the running benchmark is
stopped (SIGTERM, then SIGKILL after a grace period), the namespaces of
its testbed are removed and the sweep's work directory, holding the
runs' own, is removed unless it was named or kept.
"""

import json
import os
import subprocess
import sys

import netns
import scratch

#: Seconds a benchmark has to clean up after SIGTERM.
STOP_GRACE = 120


def host_counts(text):
    """Parse ``--hosts``: ``24`` or ``8,16,24,48``; return a list of ints."""
    try:
        counts = [int(v) for v in text.split(',') if v.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise ValueError('%r is not N or N1,N2,... (positive integers)'
                         % text)
    return counts


def rates_per_count(counts, *rates):
    """Return ``[(rate, rate, ...) for each N]``.

    Each of ``rates`` is one rate for every N or a comma-separated list
    with one per N.

    :raises ValueError: a list's length differs from the number of N.
    """
    columns = []
    for text in rates:
        values = [v.strip() for v in text.split(',') if v.strip()]
        if len(values) == 1:
            values = values * len(counts)
        if len(values) != len(counts):
            raise ValueError('%r: give one rate, or one per N of --hosts '
                             '(%d)' % (text, len(counts)))
        columns.append(values)
    return list(zip(*columns))


def child_argv(script, args, hosts, rates, json_path, work_dir, name):
    """The command line of the benchmark of one N."""
    argv = [sys.executable, script, '--hosts', str(hosts),
            '--proxies', str(args.proxies), '--host-rate', rates[0],
            '--origin-rate', rates[1], '--proxy-rate', rates[2],
            '--image-mib', str(args.image_mib), '--jitter', str(args.jitter),
            '--strategies', ','.join(args.strategies),
            '--piece-size-kb', str(args.piece_size_kb),
            '--cpu-ceiling', 'none' if args.cpu_ceiling is None
            else str(args.cpu_ceiling),
            '--json', json_path, '--work-dir', work_dir,
            '--testbed-name', name]
    if args.extra_config:
        argv += ['--extra-config', os.path.abspath(args.extra_config)]
    for (group, option), value in args.agent_option:
        argv += ['--agent-option', '%s.%s=%s' % (group, option, value)]
    return argv


def run_one(argv, name):
    """Run one benchmark; stop it and remove its testbed however it ends.

    :returns: its exit code (or None when it had to be killed).
    """
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    try:
        return proc.wait()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    finally:
        netns.cleanup(name + '-')


def run(args, rates, script):
    """Run the benchmark at every N of ``args.hosts``; return an exit code."""
    sweep = {'cpu_ceiling': args.cpu_ceiling, 'runs': []}
    code = 0
    with scratch.work_dir(args.work_dir, prefix='precache-sweep-',
                          keep=args.keep) as work_dir:
        os.chmod(work_dir, 0o755)
        for hosts, per_n in zip(args.hosts, rates):
            name = '%s%s' % (netns.PREFIX, os.urandom(3).hex())
            path = os.path.join(work_dir, 'n%d.json' % hosts)
            print('== N=%d: host %s, origin %s, proxy %s' % (
                (hosts,) + tuple(per_n)), flush=True)
            rc = run_one(child_argv(script, args, hosts, per_n, path,
                                    os.path.join(work_dir, 'n%d' % hosts),
                                    name), name)
            code = code or rc
            if os.path.exists(path):
                with open(path) as f:
                    sweep['runs'].append(json.load(f))
            if args.json:
                with open(args.json, 'w') as f:
                    json.dump(sweep, f, indent=1)
            # The stores and logs of this N are no longer needed.
            subprocess.run(['rm', '-rf', os.path.join(work_dir,
                                                      'n%d' % hosts)])
    print_sweep(sweep)
    return code


def rows(sweep):
    """Return one dict per (strategy, N) of a sweep's runs.

    A round in which no host cached the image has ``last`` and ``ratio``
    None: it is shown, not left out.
    """
    out = []
    for summary in sweep['runs']:
        bound = summary['bound_seconds']
        for r in summary['results']:
            if r.get('skipped'):
                continue
            out.append({
                'strategy': r['strategy'], 'hosts': summary['hosts'],
                'host_rate': summary['host_rate'], 'bound': bound,
                'last': r['last'],
                'ratio': r['last'] / bound if r['last'] else None,
                'origin_copies': r['origin_bytes'] /
                summary['artifact_bytes'],
                'cpu_average': r['cpu_average'], 'cpu_peak': r['cpu_peak'],
                'testbed_cpu': r.get('testbed_cpu_percent'),
                'cached': '%d/%d' % (r['cached'], r['hosts']),
                'valid': r.get('valid', True)})
    return out


def print_sweep(sweep):
    """Print the ratio of the last host to the bound against N."""
    table = rows(sweep)
    if not table:
        print('No round completed.')
        return
    print()
    print('The last host against the bound (S_c/B_host + decompression), '
          'by N; CPU ceiling %s' % (
              'none' if sweep['cpu_ceiling'] is None
              else '%.0f %% (machine average)' % sweep['cpu_ceiling']))
    header = ('strategy', 'N', 'host rate', 'cached', 'bound s', 'last s',
              'last/bound', 'origin/S_c', 'CPU avg/peak %', 'testbed CPU %',
              'valid')
    lines = [header]
    for r in sorted(table, key=lambda r: (r['strategy'], r['hosts'])):
        lines.append((
            r['strategy'], str(r['hosts']), r['host_rate'], r['cached'],
            '%.1f' % r['bound'], _fmt(r['last'], '%.1f'),
            _fmt(r['ratio'], '%.2f'),
            '%.2f' % r['origin_copies'],
            '%.0f/%.0f' % (r['cpu_average'], r['cpu_peak']),
            '-' if r['testbed_cpu'] is None else '%.0f' % r['testbed_cpu'],
            'yes' if r['valid'] else 'INVALID'))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print('  '.join(c.rjust(w) if i else c.ljust(w)
                        for i, (c, w) in enumerate(zip(line, widths))))


def _fmt(value, fmt):
    return '-' if value is None else fmt % value
