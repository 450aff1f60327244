"""Extrapolate the four distribution strategies to large clouds.

A flow-level model: every transfer is a fluid flow whose rate is set by
max-min fair sharing of the links it crosses (the sender's uplink, the
receiver's downlink). For each strategy the model gives the network time
of every host; a protocol efficiency per strategy, measured on the testbed
(``distribution_benchmark.py --json``), turns that into a real time, and
each host then spends the time to decompress and land the image.

Strategies (N hosts at B_h, an origin at B_o, K proxies at B_p, S_c the
compressed artifact, one flow per host):

* sequential: one host at a time from the origin, host i done at
  ``i * (S_c / min(B_h, B_o) / eff + land)``;
* parallel: N flows share the origin: each gets ``min(B_h, B_o / N)``;
* squid: the K proxies fetch from the origin at ``min(B_p, B_o / K)``
  each; n_p hosts (rendezvous hashing of their names, as the agents do)
  stream from proxy p at ``min(B_h, B_p / n_p)``, never ahead of what the
  proxy has received (collapsed forwarding);
* bittorrent: the swarm's fluid bound ``max(S_c / B_h, S_c / B_o,
  N * S_c / (B_o + N * B_h))`` plus the pipeline fill of ``log2(N)``
  pieces, the usual result for a seed and N symmetric peers; with first
  copies every piece leaves the origin once (origin egress S_c).

The efficiency of a strategy is the model's network time on the testbed's
parameters divided by the measured time of the last host less its landing
time. The per-host landing time is the median the testbed's sequential
strategy measured in the agents' logs (download done to image cached, one
host at a time, so on an otherwise idle machine, as every host of a cloud
lands on its own CPU and disk); a JSON written before the benchmark
recorded it gives the per-host step less S_c / B instead. At another image
size the landing time is scaled by the image's size (the decompressed
artifact) at the rate measured, or at ``--decompress-rate``. Scaling the
whole of it overstates a large image's landing: part of it (starting
qemu-img, fsync, rename) does not grow with the size.

    python tools/bench/flow_simulation.py --calibration result.json
    python tools/bench/flow_simulation.py            # ideal protocols
"""

import argparse
import functools
import json
import math
import os
import statistics
import sys

STRATEGIES = ('sequential', 'parallel', 'squid', 'bittorrent')
GBIT = 1e9
MB = 1e6
#: CERN's reported time for its Squid tier (1300 hosts).
CERN_SQUID_SECONDS = 9 * 60


class Setup(object):
    """A cloud to simulate.

    :param hosts: N.
    :param host_bps: B_h (bits/s, each direction).
    :param origin_bps: B_o.
    :param proxies: K.
    :param proxy_bps: B_p.
    :param artifact_bytes: S_c.
    :param image_bytes: the image's size as landed (decompressed).
    :param piece_bytes: BitTorrent piece size.
    """

    def __init__(self, name, hosts, host_bps, origin_bps, proxies,
                 proxy_bps, artifact_bytes, image_bytes, piece_bytes):
        self.name = name
        self.hosts = hosts
        self.host_bps = host_bps
        self.origin_bps = origin_bps
        self.proxies = proxies
        self.proxy_bps = proxy_bps
        self.artifact_bits = artifact_bytes * 8
        self.artifact_bytes = artifact_bytes
        self.image_bytes = image_bytes
        self.piece_bits = piece_bytes * 8

    @property
    def bound(self):
        """S_c / B_h: no host can do better."""
        return self.artifact_bits / self.host_bps


@functools.lru_cache(maxsize=None)
def _proxies_module():
    """Return :mod:`precache.agent.proxies`, or None (said once)."""
    try:
        from precache.agent import proxies as proxies_mod
    except ImportError:
        print('precache is not importable (run this with its virtualenv\'s '
              'python): hosts are spread evenly over the proxies, not as '
              'the agents spread themselves', file=sys.stderr)
        return None
    return proxies_mod


def proxy_loads(hosts, proxies):
    """Hosts per proxy, assigned as the agents assign themselves."""
    proxies_mod = _proxies_module()
    if proxies_mod is None:
        return [hosts // proxies + (1 if p < hosts % proxies else 0)
                for p in range(proxies)]
    urls = ['http://proxy-%d:3128' % p for p in range(proxies)]
    loads = dict.fromkeys(urls, 0)
    for h in range(hosts):
        loads[proxies_mod.order_proxies('compute-%05d' % h, urls)[0]] += 1
    return list(loads.values())


def network_times(strategy, s):
    """Per-host network times (seconds) of ``strategy`` on setup ``s``.

    :returns: ``(times, origin copies)``, times sorted, ideal protocol.
    """
    n, size = s.hosts, s.artifact_bits
    if strategy == 'sequential':
        one = size / min(s.host_bps, s.origin_bps)
        return [one * (i + 1) for i in range(n)], n
    if strategy == 'parallel':
        return [size / min(s.host_bps, s.origin_bps / n)] * n, n
    if strategy == 'squid':
        fill = min(s.proxy_bps, s.origin_bps / s.proxies)
        times = []
        for load in proxy_loads(n, s.proxies):
            if load:
                out = min(s.host_bps, s.proxy_bps / load)
                times += [size / min(fill, out)] * load
        return sorted(times), s.proxies
    if strategy == 'bittorrent':
        swarm = max(size / s.host_bps, size / s.origin_bps,
                    n * size / (s.origin_bps + n * s.host_bps))
        fill = s.piece_bits / s.host_bps * math.log2(max(n, 2))
        # First copies: the tracker hands each piece to one agent.
        return [swarm + fill] * n, 1
    raise ValueError(strategy)


def simulate(s, efficiency, land_seconds):
    """Simulate every strategy on ``s``.

    :param efficiency: ``{strategy: protocol efficiency (0, 1]}``.
    :param land_seconds: per-host time to decompress and land the image.
    :returns: a list of result dicts.
    """
    results = []
    for strategy in STRATEGIES:
        times, copies = network_times(strategy, s)
        eff = efficiency.get(strategy, 1.0)
        if strategy == 'sequential':
            one = times[0] / eff + land_seconds
            real = [one * (i + 1) for i in range(len(times))]
        else:
            real = [t / eff + land_seconds for t in times]
        results.append({'strategy': strategy, 'last': real[-1],
                        'p50': statistics.median(real),
                        'ratio': real[-1] / (s.bound + land_seconds),
                        'origin_copies': copies, 'efficiency': eff})
    return results


def calibrate(summary):
    """Derive efficiencies and landing time from a benchmark's JSON.

    :returns: ``(setup of the testbed, {strategy: efficiency},
        landing seconds, landing rate in bytes/s)``.
    """
    s = Setup('testbed', summary['hosts'], summary['host_bps'],
              summary['origin_bps'], summary['proxies'],
              summary['proxy_bps'], summary['artifact_bytes'],
              summary['image_bytes'], summary['piece_size_kb'] * 1024)
    measured = {r['strategy']: r for r in summary['results']
                if not r.get('skipped') and r['last']}
    seq = measured.get('sequential')
    one = s.artifact_bits / min(s.host_bps, s.origin_bps)
    if seq and seq.get('landing'):
        land = statistics.median(seq['landing'])
    elif seq:
        steps = [b - a for a, b in zip([0] + seq['times'], seq['times'])]
        land = max(0.0, statistics.median(steps) - one)
    else:
        land = summary['decompress_seconds']
    efficiency = {}
    for strategy, r in measured.items():
        model = network_times(strategy, s)[0]
        if strategy == 'sequential':
            network = r['last'] / r['hosts'] - land
            efficiency[strategy] = min(1.0, model[0] / max(network, 1e-9))
        else:
            network = r['last'] - land
            efficiency[strategy] = min(1.0, model[-1] / max(network, 1e-9))
    rate = summary['image_bytes'] / max(land, 1e-9)
    return s, efficiency, land, rate


def print_table(s, results, land):
    print()
    print('%s: N=%d hosts at %.3g Gbit/s, origin %.3g Gbit/s, K=%d '
          'proxies at %.3g Gbit/s; S_c=%.0f MB, image %.0f MB; bound '
          'S_c/B_h = %.1f s + landing %.1f s' % (
              s.name, s.hosts, s.host_bps / GBIT, s.origin_bps / GBIT,
              s.proxies, s.proxy_bps / GBIT, s.artifact_bytes / MB,
              s.image_bytes / MB, s.bound, land))
    print('%-11s %10s %10s %11s %11s %6s' % (
        'strategy', 'last s', 'p50 s', 'last/bound', 'origin/S_c', 'eff'))
    for r in results:
        print('%-11s %10.1f %10.1f %11.2f %11.2f %6.2f' % (
            r['strategy'], r['last'], r['p50'], r['ratio'],
            r['origin_copies'], r['efficiency']))


def cern_proxies(hosts, artifact_bytes, proxy_bps,
                 seconds=CERN_SQUID_SECONDS):
    """Return the smallest tier of proxies that serves CERN in time.

    The tier must send N * S_c in ``seconds`` at ``proxy_bps`` each.
    """
    return math.ceil(hosts * artifact_bytes * 8 / (proxy_bps * seconds))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--calibration',
                        help='JSON written by distribution_benchmark.py')
    parser.add_argument('--artifact-mb', type=float, default=393)
    parser.add_argument('--image-mb', type=float, default=1300)
    parser.add_argument('--host-gbps', type=float, default=1)
    parser.add_argument('--origin-gbps', type=float, default=1)
    parser.add_argument('--proxy-gbps', type=float, default=1)
    parser.add_argument('--proxies', type=int,
                        help='Squid proxies; default: the number that '
                             'explains CERN\'s 9 minutes')
    parser.add_argument('--piece-mb', type=float, default=4)
    parser.add_argument('--decompress-rate', type=float,
                        help='MB/s a host decompresses and lands at; '
                             'default: measured by the calibration, or '
                             '480 (gzip, python zlib)')
    parser.add_argument('--hosts', type=int, nargs='+',
                        default=[1300, 10000])
    parser.add_argument('--json', help='write the results to this file')
    args = parser.parse_args(argv)

    efficiency, rate = {}, 480 * MB
    if args.calibration:
        with open(args.calibration) as f:
            summary = json.load(f)
        testbed, efficiency, land, rate = calibrate(summary)
        print('Calibration from %s: landing %.2f s per host (%.0f MB/s); '
              'protocol efficiency %s' % (
                  os.path.basename(args.calibration), land, rate / MB,
                  ', '.join('%s %.2f' % kv for kv in efficiency.items())))
        print_table(testbed, simulate(testbed, efficiency, land), land)
    if args.decompress_rate:
        rate = args.decompress_rate * MB
    proxy_bps = args.proxy_gbps * GBIT
    artifact = args.artifact_mb * MB
    proxies = args.proxies or cern_proxies(1300, artifact, proxy_bps)
    land = args.image_mb * MB / rate
    output = []
    for hosts in args.hosts:
        s = Setup('%d hosts' % hosts, hosts, args.host_gbps * GBIT,
                  args.origin_gbps * GBIT, proxies, proxy_bps, artifact,
                  args.image_mb * MB, args.piece_mb * 2 ** 20)
        results = simulate(s, efficiency, land)
        print_table(s, results, land)
        output.append({'hosts': hosts, 'proxies': proxies,
                       'results': results})
        by = {r['strategy']: r for r in results}
        if hosts == 1300:
            squid = by['squid']['last']
            print('Sanity check: %d Squid proxies at %.3g Gbit/s (the '
                  'smallest tier that fits 1300 x %.0f MB in 9 min) give '
                  '%.1f min for the squid strategy; CERN measured about 9 '
                  'min: %s' % (proxies, proxy_bps / GBIT, artifact / MB,
                               squid / 60, 'consistent' if
                               abs(squid - CERN_SQUID_SECONDS) <=
                               0.2 * CERN_SQUID_SECONDS else 'NOT consistent'))
            print('BitTorrent at CERN: %.1f s (goal < 30 s: %s)' % (
                by['bittorrent']['last'],
                'met' if by['bittorrent']['last'] < 30 else 'NOT met'))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(output, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
