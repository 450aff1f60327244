"""The delta strategies of ``distribution_benchmark.py``.

A monthly refresh on the testbed, in one round of the same agents, by
one data plane: ``bittorrent-delta`` (the ``bittorrent`` server, the
agents in its swarm) or ``squid-delta`` (the ``http`` server, the agents
behind the Squid proxies, as strategy ``squid``):

1. the origin (``tools/testbed/origin.py``, ``[delta] enabled``) serves
   v1 of an image pair (``tools/bench/image_pairs.py``); v1 is cast to
   every host and timed until the last one reported: a full
   distribution by that data plane, the baseline;
2. the origin is restarted with v2, whose meta lists first the delta
   against v1 (over BitTorrent: its own torrent, then its http URL),
   then v2's full artifact; v2 is cast to the same hosts, which hold v1,
   and timed the same way.

Preparing the artifacts (compression, chunk indexes, the delta, the
torrents) happens when the origin starts, before each cast, in both
phases alike. It prints v2-delta time / v1-full time (the goal is 0.3
or less) and the bytes each host received.
"""

import os
import shutil
import statistics
import uuid

V1_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, 'precache:testbed-delta-v1'))
V2_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, 'precache:testbed-delta-v2'))
PAIR_FILES = ('v1.qcow2', 'v2.qcow2')
#: Each delta strategy's ImageServer, and what its phases are called.
SERVERS = {'bittorrent-delta': ('bittorrent', 'BitTorrent'),
           'squid-delta': ('http', 'Squid')}
#: The goal: v2 by delta in at most this share of v1's full time.
GOAL = 0.3


def check_pair(parser, directory):
    """Return the absolute pair directory; exit if a file is missing."""
    directory = os.path.abspath(directory)
    for name in PAIR_FILES:
        if not os.path.isfile(os.path.join(directory, name)):
            parser.error('--delta-pair %s has no %s (make the pair with '
                         'tools/bench/image_pairs.py)' % (directory, name))
    return directory


def _stage(pair_dir, work_dir):
    """Put each version in an images directory of its own, named by id."""
    dirs = []
    for name, image_id in zip(PAIR_FILES, (V1_ID, V2_ID)):
        directory = os.path.join(work_dir, 'delta-' + name.split('.')[0])
        os.makedirs(directory, exist_ok=True)
        target = os.path.join(directory, image_id)
        try:
            os.link(os.path.join(pair_dir, name), target)
        except OSError:
            shutil.copyfile(os.path.join(pair_dir, name), target)
        dirs.append(directory)
    return dirs


def run(bench, cluster, args, work_dir, agent_options, strategy):
    """Run both phases of ``strategy`` in one round; return its summary.

    :param agent_options: the agents' options (``[agent] proxies`` for
        ``squid-delta``).
    """
    import cluster as cluster_mod
    server, label = SERVERS[strategy]
    v1_dir, v2_dir = _stage(args.delta_pair, work_dir)
    options = {'delta': {'enabled': 'true',
                         'index_dir': os.path.join(work_dir, 'chunks')}}

    def serve(images_dir, image_id):
        metas = cluster.start_origin(
            server, args.extra_config, args.piece_size_kb,
            images_dir=images_dir,
            name='%s-%s' % (strategy, image_id[:8]),
            options=options, origin_args=['--delta-base', V1_ID])
        return metas[image_id]

    name = label.lower()
    with cluster_mod.Round(cluster, strategy, agent_options) as rnd:
        meta = serve(v1_dir, V1_ID)
        full_size = meta['sources'][0]['size']
        full = bench.timed(rnd, '%s v1 full' % name, V1_ID, meta,
                           size=full_size)
        meta = serve(v2_dir, V2_ID)
        first = meta['sources'][0]
        transport = first.get('transport') or 'http'
        if (first['method'], transport) != ('delta', server):
            raise RuntimeError('the origin offered no delta over %s for v2: '
                               'its sources are %s' % (
                                   server, [(s['method'], s.get('transport'))
                                            for s in meta['sources']]))
        v2_full = next(s['size'] for s in meta['sources']
                       if s['method'] == server)
        delta = bench.timed(rnd, '%s v2 delta' % name, V2_ID, meta,
                            size=first['size'])
    return {'strategy': strategy, 'label': label,
            'pair': args.delta_pair, 'v1_full_bytes': full_size,
            'v2_full_bytes': v2_full, 'delta_bytes': first['size'],
            'full': full, 'delta': delta,
            'ratio': (delta['last'] / full['last']
                      if delta['last'] and full['last'] else None)}


def print_summary(summary):
    """Print the delta round's figures."""
    full, delta = summary['full'], summary['delta']
    label = summary.get('label', 'BitTorrent')
    print()
    print('Delta round %s (pair %s): v1 full artifact %.1f MB, v2 full '
          '%.1f MB, v2 delta %.1f MB (%.3f of v2 full)' % (
              summary.get('strategy', 'bittorrent-delta'),
              summary['pair'], summary['v1_full_bytes'] / 1e6,
              summary['v2_full_bytes'] / 1e6, summary['delta_bytes'] / 1e6,
              summary['delta_bytes'] / summary['v2_full_bytes']))
    for what, r in (('v1 in full by %s' % label, full),
                    ('v2 as a delta by %s' % label, delta)):
        print('  %s: %d/%d cached (%s), last %s s, p50 %s s, bytes per '
              'host %s, landing p50 %s s, CPU avg/peak %.0f/%.0f %%' % (
                  what, r['cached'], r['hosts'], r.get('source_counts'),
                  _fmt(r['last']), _fmt(r['p50']),
                  _fmt(r.get('bytes_per_host'), '%d'),
                  _fmt(_median(r.get('landing')), '%.2f'),
                  r['cpu_average'], r['cpu_peak']))
    ratio = summary['ratio']
    print('  v2-delta time / v1-full time: %s (goal <= %.1f)' % (
        _fmt(ratio, '%.3f'), GOAL))


def _median(values):
    return statistics.median(values) if values else None


def _fmt(value, fmt='%.1f'):
    return '-' if value is None else fmt % value
