"""BitTorrent piece by piece: validated on the testbed, then extrapolated.

The model is :mod:`piece_model` (first copies, the swarm's connections,
libtorrent's piece picker with the agents' bands, max-min sharing of
every link). This tool:

1. reads the distribution benchmark's JSON (one run, or a sweep of
   several N: ``distribution_benchmark.py --hosts 8,16,24,48 --json``);
2. fits the model's one free parameter, the frames each flow keeps
   queued on a link (which delays the ``have`` messages, requests and
   first-copy fetches: see :mod:`piece_model`), at the smallest N
   measured in a valid round whose origin sent about one copy (as
   modelled), unless ``--calibrate-at`` or ``--queue-frames`` say
   otherwise; it carries over to
   other rates and N, since a queue is counted in frames per flow;
3. prints, for every measured N, the model against the measurement (the
   model's last host plus the landing time the round measured) and the
   error; rounds the benchmark marked INVALID (CPU above its ceiling)
   are shown and left out of the error range;
4. simulates CERN's case (1300 hosts, 1 Gbit/s hosts and Glance, 393 MB
   artifact, 1.3 GB image) and 10,000 hosts, with the range the
   validation errors imply, and the Squid tier of CERN's published
   numbers (2 Gbit/s Squid servers, a 1 Gbit/s Glance, 1 Gbit/s hosts)
   with the number of proxies given (``--proxies``), through the flow
   model of ``flow_simulation.py``.

    python tools/bench/piece_simulation.py --testbed sweep.json
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cpu_ceiling  # noqa: E402
import flow_simulation  # noqa: E402
import piece_model  # noqa: E402

GBIT = 1e9
MB = 1e6
MiB = 1 << 20
#: The landing rate measured on the testbed (bytes of image per second):
#: the sequential round's median, 0.14 s for the 61 MB qcow2 image
#: (doc/distribution-testbed-result.json), one host at a time.
LANDING_RATE = 432 * MB
#: Seeds (band homes, first-copy agents, graphs) a measured round's
#: model time is averaged over.
SEEDS = 3
#: Origin copies up to which a round behaved as the model does.
MODELLED_COPIES = 1.1
#: Frames per flow searched between these when calibrating.
FRAMES_RANGE = (0.0, 64.0)


def runs_of(document):
    """The benchmark summaries of a JSON (a sweep's or one run's)."""
    return document['runs'] if 'runs' in document else [document]


def measured_rounds(documents):
    """Return the BitTorrent rounds measured, one dict each, by N.

    A round from before the benchmark marked validity is checked against
    the default CPU ceiling here.
    """
    rounds = []
    for summary in (s for d in documents for s in runs_of(d)):
        for r in summary['results']:
            if r['strategy'] != 'bittorrent' or r.get('skipped') or \
                    not r.get('last') or r['cached'] != r['hosts']:
                continue
            landing = r.get('landing') or []
            rounds.append({
                'hosts': summary['hosts'], 'host_rate': summary['host_rate'],
                'host_bps': summary['host_bps'],
                'origin_bps': summary['origin_bps'],
                'artifact_bytes': summary['artifact_bytes'],
                'piece_bytes': summary['piece_size_kb'] * 1024,
                'bound': summary['bound_seconds'],
                'measured': r['last'],
                'origin_copies': r['origin_bytes'] / summary['artifact_bytes'],
                'landing': statistics.median(landing) if landing else 0.0,
                'cpu_average': r.get('cpu_average'),
                'valid': r['valid'] if 'valid' in r else cpu_ceiling.check(
                    dict(r), cpu_ceiling.DEFAULT_CEILING)['valid']})
    return sorted(rounds, key=lambda r: r['hosts'])


def model_last(rnd, frames, seeds=SEEDS):
    """The model's time for a measured round: its last host, landed.

    The mean over ``seeds`` runs of the model.
    """
    swarm = piece_model.Swarm(rnd['hosts'], rnd['host_bps'],
                              rnd['origin_bps'], rnd['artifact_bytes'],
                              rnd['piece_bytes'], queue_frames=frames)
    return statistics.mean(piece_model.simulate(swarm, seed=seed).last
                           for seed in range(seeds)) + rnd['landing']


def calibration_round(rounds):
    """Return the round to fit the queues on.

    The smallest N that is valid and behaved as modelled (the origin sent
    at most :data:`MODELLED_COPIES` x S_c: first copies, no fallback to
    the seed or http); failing that, the smallest valid N, or the
    smallest N.
    """
    for fits in (lambda r: r['valid'] and
                 r['origin_copies'] <= MODELLED_COPIES,
                 lambda r: r['valid'], lambda r: True):
        for rnd in rounds:
            if fits(rnd):
                return rnd


def calibrate(rnd, tolerance=0.05):
    """The frames per flow with which the model matches ``rnd``.

    Bisection: the model's time grows with the queues.
    """
    lo, hi = FRAMES_RANGE
    if model_last(rnd, lo) >= rnd['measured']:
        return lo
    if model_last(rnd, hi) <= rnd['measured']:
        return hi
    while hi - lo > tolerance:
        mid = (lo + hi) / 2
        if model_last(rnd, mid) < rnd['measured']:
            lo = mid
        else:
            hi = mid
    # The model's time moves in small steps (pieces): the closer end.
    return min((lo, hi), key=lambda frames: abs(
        model_last(rnd, frames) - rnd['measured']))


def validate(rounds, frames):
    """Add ``model`` and ``error`` (model / measured - 1) to each round."""
    for rnd in rounds:
        rnd['model'] = model_last(rnd, frames)
        rnd['error'] = rnd['model'] / rnd['measured'] - 1
    return rounds


def error_range(rounds, calibrated_n):
    """``(lowest, highest)`` error of the valid rounds not calibrated on.

    The range always holds 0 (the model itself); without such rounds it
    is taken over every round.
    """
    errors = [r['error'] for r in rounds
              if r['valid'] and r['hosts'] != calibrated_n]
    errors = errors or [r['error'] for r in rounds] or [0.0]
    return min(errors + [0.0]), max(errors + [0.0])


def print_validation(rounds, calibrated_n, frames):
    print('Validation against the testbed (the model\'s last host, mean of '
          '%d seeds, + the round\'s measured landing p50; error = model / '
          'measured - 1)' % SEEDS)
    print('queues: %.2f frames per flow%s' % (
        frames, '' if calibrated_n is None else
        ', calibrated at N=%d' % calibrated_n))
    print('%4s %9s %8s %10s %8s %10s %8s %10s %7s  %s' % (
        'N', 'host', 'bound s', 'measured', 'ratio', 'origin/S_c',
        'model s', 'ratio', 'error', 'CPU avg %, validity'))
    for r in rounds:
        print('%4d %9s %8.1f %10.1f %8.2f %10.2f %8.1f %10.2f %+6.1f%%  %s '
              '%s%s' % (
                  r['hosts'], r['host_rate'], r['bound'], r['measured'],
                  r['measured'] / r['bound'], r['origin_copies'], r['model'],
                  r['model'] / r['bound'], 100 * r['error'],
                  '-' if r['cpu_average'] is None
                  else '%.0f' % r['cpu_average'],
                  'valid' if r['valid'] else 'INVALID',
                  ' (calibration)' if r['hosts'] == calibrated_n else ''))


def extrapolate(args, hosts, frames, errors):
    """Simulate ``hosts`` at the cloud's rates; return a result dict."""
    swarm = piece_model.Swarm(
        hosts, args.host_gbps * GBIT, args.origin_gbps * GBIT,
        args.artifact_mb * MB, args.piece_kb * 1024, queue_frames=frames,
        connections=args.connections,
        rack_hosts=args.rack_hosts,
        rack_bps=args.rack_gbps * GBIT if args.rack_gbps else None)
    started = time.process_time()
    result = piece_model.simulate(swarm, seed=args.seed)
    cpu = time.process_time() - started
    landing = args.image_mb * MB / (args.landing_rate * MB)
    total = result.last + landing
    low, high = errors
    return {'hosts': hosts, 'bound': swarm.bound + landing,
            'network_last': result.last, 'network_p50': result.median,
            'landing': landing, 'last': total,
            'range': (total / (1 + high), total / (1 + low)),
            'origin_copies': result.origin_copies,
            'steps': result.steps, 'cpu_seconds': cpu,
            'connections': swarm.connections, 'pieces': swarm.pieces}


def squid_seconds(args, hosts, proxies):
    """CERN's Squid tier through the flow model: last host, landed."""
    setup = flow_simulation.Setup(
        'squid', hosts, args.host_gbps * GBIT, args.origin_gbps * GBIT,
        proxies, args.squid_gbps * GBIT, args.artifact_mb * MB,
        args.image_mb * MB, args.piece_kb * 1024)
    times, _copies = flow_simulation.network_times('squid', setup)
    return times[-1] + args.image_mb * MB / (args.landing_rate * MB)


def print_extrapolation(args, r):
    print('%d hosts: BitTorrent %.1f s (range %.1f-%.1f s), bound '
          'S_c/B_h + landing %.1f s, last/bound %.2f; network: last %.2f s, '
          'median %.2f s; landing %.1f s; origin sent %.2f x S_c; '
          '%d pieces, %d connections per host (%d steps, %.0f CPU-s)' % (
              r['hosts'], r['last'], r['range'][0], r['range'][1],
              r['bound'], r['last'] / r['bound'], r['network_last'],
              r['network_p50'], r['landing'], r['origin_copies'],
              r['pieces'], min(r['connections'], r['hosts'] - 1),
              r['steps'], r['cpu_seconds']))
    squid = ['K=%d: %.1f min' % (k, squid_seconds(args, r['hosts'], k) / 60)
             for k in args.proxies]
    print('  Squid tier (flow model, %.3g Gbit/s proxies, origin %.3g '
          'Gbit/s): %s' % (args.squid_gbps, args.origin_gbps,
                           ', '.join(squid)))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--testbed', action='append', default=[],
                        help='JSON of distribution_benchmark.py (one run '
                             'or a sweep); may be repeated')
    parser.add_argument('--queue-frames', type=float,
                        help='frames each flow keeps queued on a link; '
                             'default: fitted at the smallest N measured')
    parser.add_argument('--calibrate-at', type=int, metavar='N',
                        help='fit the queues at this N; default: the '
                             'smallest N of a valid round')
    parser.add_argument('--hosts', type=int, nargs='+',
                        default=[1300, 10000])
    parser.add_argument('--host-gbps', type=float, default=1)
    parser.add_argument('--origin-gbps', type=float, default=1,
                        help='the origin (Glance) uplink')
    parser.add_argument('--squid-gbps', type=float, default=2)
    parser.add_argument('--proxies', type=int, nargs='+', default=[4, 8],
                        help='Squid proxies of the tier (an input)')
    parser.add_argument('--artifact-mb', type=float, default=393)
    parser.add_argument('--image-mb', type=float, default=1300)
    parser.add_argument('--piece-kb', type=int, default=1024,
                        help='[bittorrent_server] piece_size_kb')
    parser.add_argument('--connections', type=int,
                        default=piece_model.CONNECTIONS)
    parser.add_argument('--rack-hosts', type=int, default=0,
                        help='hosts per rack (0: no rack uplinks)')
    parser.add_argument('--rack-gbps', type=float,
                        help='each rack\'s uplink, e.g. 10 for 40 hosts '
                             'at 1 Gbit/s (4:1 oversubscribed)')
    parser.add_argument('--landing-rate', type=float,
                        default=LANDING_RATE / MB,
                        help='MB of image a host lands per second')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='write the results to this file')
    args = parser.parse_args(argv)
    if args.rack_hosts and not args.rack_gbps:
        parser.error('--rack-hosts needs --rack-gbps')

    documents = []
    for path in args.testbed:
        with open(path) as f:
            documents.append(json.load(f))
    rounds = measured_rounds(documents)
    calibrated_n = None
    frames = args.queue_frames
    if frames is None:
        if not rounds:
            parser.error('give --testbed (a benchmark JSON) or '
                         '--queue-frames')
        base = next((r for r in rounds if r['hosts'] == args.calibrate_at),
                    None) if args.calibrate_at else calibration_round(rounds)
        if base is None:
            parser.error('no BitTorrent round with N=%d measured'
                         % args.calibrate_at)
        calibrated_n = base['hosts']
        frames = calibrate(base)
    errors = (0.0, 0.0)
    if rounds:
        validate(rounds, frames)
        print_validation(rounds, calibrated_n, frames)
        errors = error_range(rounds, calibrated_n)
        print('Error range used below: %+.1f%% to %+.1f%%' % (
            100 * errors[0], 100 * errors[1]))
    print()
    print('Cloud: hosts %.3g Gbit/s, origin %.3g Gbit/s, S_c=%.0f MB, image '
          '%.0f MB, %d KiB pieces, landing at %.0f MB/s%s' % (
              args.host_gbps, args.origin_gbps, args.artifact_mb,
              args.image_mb, args.piece_kb, args.landing_rate,
              '; racks of %d hosts, %.3g Gbit/s uplinks' % (
                  args.rack_hosts, args.rack_gbps) if args.rack_hosts
              else ''))
    output = {'queue_frames': frames, 'calibrated_at': calibrated_n,
              'validation': rounds, 'error_range': errors, 'clouds': []}
    for hosts in args.hosts:
        result = extrapolate(args, hosts, frames, errors)
        result['squid'] = {k: squid_seconds(args, hosts, k)
                           for k in args.proxies}
        print_extrapolation(args, result)
        output['clouds'].append(result)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(output, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
