"""Distribute one image to N hosts with four strategies on a shaped testbed.

One run builds a testbed (``tools/testbed``: network namespaces, a bridge,
every link shaped with tc), starts a private RabbitMQ, the service's server
side on the origin node and N real ``precache-agent`` processes, and
distributes the same qcow2 image (made with ``imagegen.py`` and qemu-img)
four times, each time to fresh agents with empty stores:

a. ``sequential``: Nova-style, hosts fetch from the origin one after
   another (a targeted cast, the next one when the previous host reported);
b. ``parallel``: every host at once, straight from the origin (one fanout);
c. ``squid``: every host at once through K cold Squid proxies configured
   by ``etc/squid/precache-squid.conf`` (``[agent] proxies``, consistent
   hashing, ``start_delay_window`` jitter);
d. ``bittorrent``: the ``bittorrent`` ImageServer and ImageSource plugins;
e. ``bittorrent-delta`` and ``squid-delta`` (only when named, with
   ``--delta-pair DIR``): v1 of an image pair in full by BitTorrent (or
   through the Squid proxies), then v2 as a delta to the hosts holding
   v1, by the same data plane, in the same round (see
   ``delta_round.py``).

For each it prints the completion time of the last host and the median,
their ratio to the bound S_c/B_host + decompression (S_c the compressed
artifact's size), the bytes the origin's interface sent divided by S_c, the
hosts' median landing time (from an agent's log line that ends the
download to the one that says the image is cached: checks, conversion to
raw, rename) and the machine's CPU utilisation (a figure near 100 % means
the CPU, not the links, limited the run). ``--json`` writes everything,
including the calibration figures ``flow_simulation.py`` reads.

A round whose machine-wide CPU averaged above ``--cpu-ceiling`` (70 %)
is marked INVALID in the table and the JSON (``cpu_ceiling.py``); the CPU
the testbed's own processes used is given beside it (``nscpu.py``).
``--hosts 8,16,24,48`` runs one benchmark per N, each in a process and on
a testbed of its own, and prints the last host's ratio to the bound
against N (``host_sweep.py``); the rates then take one value for all N or
one per N (``--host-rate 12mbit,6mbit,4mbit,2mbit``).

Needs root, squid, qemu-utils and rabbitmq-server. Every wait is bounded;
the testbed is removed on exit, failure or Ctrl-C
(``tools/testbed/testbed.py cleanup`` removes what a killed run left).

    sudo python tools/bench/distribution_benchmark.py --hosts 24 \\
        --proxies 3 --host-rate 8mbit --origin-rate 8mbit \\
        --proxy-rate 8mbit --image-mib 192 --json result.json
"""

import argparse
import collections
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'testbed'))

import cpu_ceiling  # noqa: E402
import delta_round  # noqa: E402
import host_sweep  # noqa: E402
import imagegen  # noqa: E402
import netns  # noqa: E402
import scratch  # noqa: E402

STRATEGIES = ('sequential', 'parallel', 'squid', 'bittorrent')
#: Run only when named in --strategies.
DELTAS = tuple(sorted(delta_round.SERVERS))
IMAGE_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, 'precache:testbed-image'))
BITTORRENT = 'bittorrent'
MiB = 1024 * 1024
_RATE = re.compile(r'^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)$')
_UNITS = {'bit': 1, 'kbit': 1e3, 'mbit': 1e6, 'gbit': 1e9}


def rate_bps(rate):
    """Return a tc rate (``40mbit``) in bits per second."""
    match = _RATE.match(rate.lower())
    if not match:
        raise argparse.ArgumentTypeError('%r is not a rate like 40mbit'
                                         % rate)
    return float(match.group(1)) * _UNITS[match.group(2)]


def option_setting(text):
    """Parse ``group.name=value`` into ``((group, name), value)``."""
    key, sep, value = text.partition('=')
    group, dot, name = key.partition('.')
    if not (sep and dot and group and name):
        raise argparse.ArgumentTypeError('%r is not GROUP.NAME=VALUE'
                                         % text)
    return (group, name), value


def make_image(directory, size_mib):
    """Make a qcow2 image named IMAGE_ID in ``directory``; return path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, IMAGE_ID)
    raw = os.path.join(directory, '.image.raw')
    imagegen.write_image(raw, size_mib * MiB)
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw,
                    path], check=True)
    os.unlink(raw)
    return path


def decompress_seconds(path, algorithm):
    """Time precache's own decompression of the artifact at ``path``."""
    from precache.common import compression

    class _Discard(object):
        def write(self, data):
            pass

    started = time.monotonic()
    writer = compression.decompressor(algorithm, _Discard())
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(MiB), b''):
            writer.write(chunk)
    writer.close()
    return time.monotonic() - started


def plugins_available():
    """Tell whether the BitTorrent server and source plugins exist."""
    from precache.common import plugin
    return (BITTORRENT in plugin.available_plugins('precache.servers') and
            BITTORRENT in plugin.available_plugins('precache.sources'))


class Benchmark(object):
    """Runs the strategies on a cluster and collects their figures."""

    def __init__(self, args, cluster, artifact):
        self.args = args
        self.cluster = cluster
        self.size = artifact['size']
        self.host_bps = rate_bps(args.host_rate)
        self.origin_bps = rate_bps(args.origin_rate)
        self.results = []
        #: Called after each strategy's result is recorded.
        self.on_result = lambda: None

    def timeout(self, size=None):
        """A bound on one strategy: all hosts served one by one, twice."""
        hosts = len(self.cluster.testbed.hosts)
        one = (size or self.size) * 8 / min(self.host_bps, self.origin_bps)
        return 2 * hosts * one + 120

    def run(self, strategy, metas, agent_options, sequential=False):
        import cluster as cluster_mod
        with cluster_mod.Round(self.cluster, strategy, agent_options) as rnd:
            return self.timed(rnd, strategy, IMAGE_ID, metas[IMAGE_ID],
                              sequential)

    def timed(self, rnd, strategy, image_id, meta, sequential=False,
              size=None):
        """Cast ``meta`` in the round ``rnd``; time it until all reported.

        :param size: the bytes of the artifact cast, when it is not the
            benchmark's image (the figures are relative to it).
        """
        import cluster as cluster_mod
        import nscpu
        hosts = [n.short for n in self.cluster.testbed.hosts]
        rnd.expect(image_id)
        origin_before = self.cluster.testbed.origin.counters()[0]
        proxies_before = self.cluster.proxy_counters()
        deadline = time.monotonic() + self.timeout(size)
        with cluster_mod.CpuMonitor() as cpu, nscpu.NamespaceCpu(
                n.namespace for n in self.cluster.testbed.nodes) as own:
            start = time.monotonic()
            if sequential:
                for host in hosts:
                    rnd.cast(image_id, meta, host=host)
                    left = deadline - time.monotonic()
                    if not rnd.wait([host], max(left, 0)):
                        break
            else:
                rnd.cast(image_id, meta)
                rnd.wait(hosts, self.timeout(size))
        origin_sent = (self.cluster.testbed.origin.counters()[0] -
                       origin_before)
        proxies_sent = sum(self.cluster.proxy_counters()) - sum(
            proxies_before)
        return self._record(strategy, hosts, dict(rnd.arrivals), start,
                            origin_sent, proxies_sent, cpu,
                            rnd.landing_seconds(image_id), size, own)

    def _record(self, strategy, hosts, arrivals, start, origin_sent,
                proxies_sent, cpu, landing, size=None, own=None):
        done = {h: (t - start, report) for h, (t, report) in
                arrivals.items()}
        cached = sorted(t for t, report in done.values()
                        if report['status'] == 'cached')
        failures = {h: report.get('reason') for h, (t, report) in
                    done.items() if report['status'] != 'cached'}
        failures.update({h: 'no report before the time limit'
                         for h in hosts if h not in done})
        result = {
            'strategy': strategy, 'hosts': len(hosts),
            'cached': len(cached), 'failures': failures,
            'last': cached[-1] if cached else None,
            'p50': _median(cached),
            'sources': sorted({r.get('source') for _t, r in done.values()
                               if r.get('source')}),
            'source_counts': dict(collections.Counter(
                r.get('source') for _t, r in done.values()
                if r.get('source'))),
            'origin_bytes': origin_sent, 'proxy_bytes': proxies_sent,
            'cpu_average': cpu.average, 'cpu_peak': cpu.peak,
            # One a second from the cast: where in the round the CPU peaked.
            'cpu_samples': [round(v, 1) for v in cpu.samples],
            'times': sorted(cached), 'landing': sorted(landing.values()),
            'bytes_per_host': _median([r['bytes'] for _t, r in done.values()
                                       if r.get('bytes') is not None])}
        if size:
            result['artifact_bytes'] = size
        if own is not None:
            result['testbed_cpu_seconds'] = own.seconds
            result['testbed_cpu_percent'] = own.percent()
        cpu_ceiling.check(result, self.args.cpu_ceiling)
        self.results.append(result)
        self.on_result()
        print('  %s: %d/%d cached, last %.1fs, origin sent %.2f x S_c, '
              'landing p50 %s s, CPU %.0f%% (peak %.0f%%)%s' % (
                  strategy, len(cached), len(hosts), result['last'] or 0,
                  origin_sent / (size or self.size),
                  _fmt(_median(result['landing']), '%.2f'), cpu.average,
                  cpu.peak, '' if result['valid'] else
                  ' INVALID: ' + result['invalid_reason']),
              flush=True)
        return result


def print_table(summary):
    """Print the results table of a benchmark summary."""
    bound = summary['bound_seconds']
    size = summary['artifact_bytes']
    print()
    print('N=%d hosts, K=%d proxies, host %s, origin %s, proxy %s; '
          'S_c=%.1f MB (raw %.1f MB); bound S_c/B_host + decompress = '
          '%.1f s + %.2f s' % (
              summary['hosts'], summary['proxies'], summary['host_rate'],
              summary['origin_rate'], summary['proxy_rate'], size / 1e6,
              summary['raw_bytes'] / 1e6, summary['transfer_seconds'],
              summary['decompress_seconds']))
    header = ('strategy', 'cached', 'last s', 'p50 s', 'last/bound',
              'origin/S_c', 'landing p50 s', 'CPU avg/peak %',
              'testbed CPU %', 'valid')
    rows = [header]
    for r in summary['results']:
        if r.get('skipped'):
            rows.append((r['strategy'], '-', '-', '-', '-', '-', '-', '-',
                         '-', 'not run: ' + r['skipped']))
            continue
        # Another image (the delta round's): no bound of the same image.
        own = r.get('artifact_bytes')
        rows.append((
            r['strategy'], '%d/%d' % (r['cached'], r['hosts']),
            _fmt(r['last']), _fmt(r['p50']),
            _fmt(r['last'] / bound if r['last'] and not own else None,
                 '%.2f'),
            '%.2f' % (r['origin_bytes'] / (own or size)),
            _fmt(_median(r.get('landing')), '%.2f'),
            '%.0f/%.0f' % (r['cpu_average'], r['cpu_peak']),
            _fmt(r.get('testbed_cpu_percent'), '%.0f'),
            cpu_ceiling.label(r) or 'yes'))
    columns = len(header) - 1
    widths = [max(len(str(row[i])) for row in rows) for i in range(columns)]
    for row in rows:
        print('  '.join(str(c).rjust(w) if i else str(c).ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths))) +
              '  ' + str(row[columns]))
    if summary.get('cpu_ceiling') is not None:
        print('valid: the machine\'s CPU averaged at most %.0f %% over the '
              'round (--cpu-ceiling); testbed CPU: what the testbed\'s own '
              'processes used, of the whole machine' % summary['cpu_ceiling'])
    for r in summary['results']:
        if not r.get('valid', True):
            print('%s: INVALID: %s' % (r['strategy'], r['invalid_reason']))
    for delta in summary.get('deltas', {}).values():
        delta_round.print_summary(delta)
    for r in summary['results']:
        for host, reason in sorted((r.get('failures') or {}).items()):
            print('%s: %s failed: %s' % (r['strategy'], host, reason))


def _median(values):
    return statistics.median(values) if values else None


def _fmt(value, fmt='%.1f'):
    return '-' if value is None else fmt % value


def run(args):
    with scratch.work_dir(args.work_dir, keep=args.keep) as work_dir:
        return _run_in(args, work_dir)


def _run_in(args, work_dir):
    os.chmod(work_dir, 0o755)
    images_dir = os.path.join(work_dir, 'images')
    print('Making a %d MiB qcow2 image in %s' % (args.image_mib, images_dir),
          flush=True)
    image_path = make_image(images_dir, args.image_mib)
    testbed = netns.Testbed(args.hosts, args.proxies, args.host_rate,
                            args.origin_rate, args.proxy_rate,
                            name=args.testbed_name)
    print('Building testbed %s: %d hosts, %d proxies' % (
        testbed.name, args.hosts, args.proxies), flush=True)
    testbed.create()
    cluster = None
    try:
        netns.enter(testbed.ctl.namespace)
        # Imported here: the control plane's threads and sockets must be
        # made inside the control node.
        import cluster as cluster_mod
        cluster = cluster_mod.Cluster(testbed, work_dir, images_dir)
        cluster.start_broker()
        return _run_strategies(args, cluster, image_path, work_dir)
    finally:
        if cluster is not None:
            cluster.stop()
        testbed.destroy()


def _run_strategies(args, cluster, image_path, work_dir):
    metas = cluster.start_origin('http')
    artifact = metas[IMAGE_ID]['sources'][0]
    www = os.path.join(work_dir, 'www')
    artifact_path = os.path.join(www, artifact['url'].split('/', 3)[3])
    decompress = decompress_seconds(artifact_path, artifact['compression'])
    bench = Benchmark(args, cluster, artifact)
    transfer = artifact['size'] * 8 / bench.host_bps
    summary = {
        'hosts': args.hosts, 'proxies': args.proxies,
        'host_rate': args.host_rate, 'origin_rate': args.origin_rate,
        'proxy_rate': args.proxy_rate,
        'host_bps': bench.host_bps, 'origin_bps': bench.origin_bps,
        'proxy_bps': rate_bps(args.proxy_rate),
        'image_bytes': os.path.getsize(image_path),
        'raw_bytes': args.image_mib * MiB,
        'artifact_bytes': artifact['size'],
        'compression': artifact['compression'],
        'jitter': args.jitter, 'piece_size_kb': args.piece_size_kb,
        'transfer_seconds': transfer, 'decompress_seconds': decompress,
        'bound_seconds': transfer + decompress,
        'cpus': os.cpu_count(), 'cpu_ceiling': args.cpu_ceiling,
        'results': bench.results}
    # Written after every strategy: a run cut short keeps what it measured.
    bench.on_result = lambda: _save(args.json, summary)
    no_proxy = {'agent': {'start_delay_window': 0,
                          'disk_reserve_mb': 0}}
    wanted = args.strategies
    if 'sequential' in wanted:
        bench.run('sequential', metas, no_proxy, sequential=True)
    if 'parallel' in wanted:
        bench.run('parallel', metas, no_proxy)
    if 'squid' in wanted:
        urls = cluster.start_squids()
        try:
            bench.run('squid', metas, {'agent': {
                'proxies': urls, 'start_delay_window': args.jitter,
                'direct_after_proxies': 'true', 'disk_reserve_mb': 0}})
        finally:
            cluster.stop_squids()
    if BITTORRENT in wanted:
        if plugins_available():
            bt_metas = cluster.start_origin(BITTORRENT, args.extra_config,
                                            args.piece_size_kb)
            options = {'agent': dict(no_proxy['agent'])}
            for (group, name), value in args.agent_option:
                options.setdefault(group, {})[name] = value
            bench.run(BITTORRENT, bt_metas, options)
        else:
            bench.results.append({
                'strategy': BITTORRENT,
                'skipped': 'the bittorrent plugins are not installed'})
    for strategy in DELTAS:
        if strategy in wanted:
            summary.setdefault('deltas', {})[strategy] = _delta_round(
                args, bench, cluster, work_dir, strategy, no_proxy)
    _save(args.json, summary)
    print_table(summary)
    return 0 if all(r.get('skipped') or not r['failures']
                    for r in bench.results) else 1


def _delta_round(args, bench, cluster, work_dir, strategy, no_proxy):
    """Run one delta strategy; return its summary."""
    options = {'agent': dict(no_proxy['agent'])}
    if strategy == 'squid-delta':
        options['agent'].update({
            'proxies': cluster.start_squids(),
            'start_delay_window': args.jitter,
            'direct_after_proxies': 'true'})
    for (group, name), value in args.agent_option:
        options.setdefault(group, {})[name] = value
    try:
        return delta_round.run(bench, cluster, args, work_dir, options,
                               strategy)
    finally:
        if strategy == 'squid-delta':
            cluster.stop_squids()


def _save(path, summary):
    """Write ``summary`` as JSON to ``path`` (if given)."""
    if path:
        with open(path, 'w') as f:
            json.dump(summary, f, indent=1)


def _stop_on_signal(signum, frame):
    raise KeyboardInterrupt('signal %d' % signum)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--hosts', type=host_sweep.host_counts,
                        default=[24],
                        help='N, or N1,N2,...: one benchmark per N, '
                             'each on a testbed of its own')
    parser.add_argument('--proxies', type=int, default=3,
                        help='Squid proxies of strategy squid')
    # Slow enough that 24 agents on 2 cores leave the CPU with room.
    parser.add_argument('--host-rate', default='8mbit',
                        help='a rate, or one per N of --hosts (comma '
                             'separated); the same for the two below')
    parser.add_argument('--origin-rate', default='8mbit')
    parser.add_argument('--proxy-rate', default='8mbit')
    parser.add_argument('--cpu-ceiling', default=cpu_ceiling.DEFAULT_CEILING,
                        type=_ceiling, metavar='PERCENT',
                        help='a round whose machine-wide CPU averaged above '
                             'this is marked INVALID; "none" disables it')
    parser.add_argument('--testbed-name', help=argparse.SUPPRESS)
    parser.add_argument('--image-mib', type=int, default=192,
                        help='virtual size of the generated image')
    parser.add_argument('--jitter', type=float, default=2.0,
                        help='[agent] start_delay_window of strategy squid')
    parser.add_argument('--strategies', default=','.join(STRATEGIES),
                        type=lambda s: [x for x in s.split(',') if x])
    parser.add_argument('--piece-size-kb', type=int, default=64,
                        help='[bittorrent_server] piece_size_kb')
    parser.add_argument('--extra-config',
                        help='a precache config file added to the origin\'s '
                             'in the bittorrent strategy (plugin options)')
    parser.add_argument('--agent-option', action='append', default=[],
                        type=option_setting, metavar='GROUP.NAME=VALUE',
                        help='an option of the agents in the bittorrent '
                             'and delta strategies (e.g. bittorrent_source.'
                             'stream_window=0); may be repeated')
    parser.add_argument('--delta-pair', metavar='DIR',
                        help='v1.qcow2 and v2.qcow2 of an image pair '
                             '(tools/bench/image_pairs.py), for strategies '
                             '%s' % ', '.join(DELTAS))
    parser.add_argument('--work-dir',
                        help='kept afterwards; default: a new directory in '
                             '/var/tmp, removed at the end of the run')
    parser.add_argument('--keep', action='store_true',
                        help='keep the new work directory')
    parser.add_argument('--json', help='write the results to this file')
    args = parser.parse_args(argv)
    try:
        rates = host_sweep.rates_per_count(
            args.hosts, args.host_rate, args.origin_rate, args.proxy_rate)
        for per_n in rates:
            for rate in per_n:
                rate_bps(rate)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        parser.error(str(exc))
    unknown = set(args.strategies) - set(STRATEGIES + DELTAS)
    if unknown:
        parser.error('unknown strategies: %s' % ', '.join(sorted(unknown)))
    deltas = set(args.strategies) & set(DELTAS)
    if deltas:
        if not args.delta_pair:
            parser.error('strategy %s needs --delta-pair'
                         % ', '.join(sorted(deltas)))
        args.delta_pair = delta_round.check_pair(parser, args.delta_pair)
    if os.geteuid() != 0:
        parser.error('needs root (network namespaces, tc)')
    if args.json:
        args.json = os.path.abspath(args.json)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    # Before oslo.messaging names a queue: a run started from a shell that
    # has exited would die in its queue manager.
    from precache.common import process
    process.ensure_own_process_group()
    if len(args.hosts) > 1:
        return host_sweep.run(args, rates, __file__)
    args.hosts = args.hosts[0]
    args.host_rate, args.origin_rate, args.proxy_rate = rates[0]
    return run(args)


def _ceiling(text):
    try:
        return cpu_ceiling.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))


if __name__ == '__main__':
    sys.exit(main())
