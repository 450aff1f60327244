"""The agent's side of deltas: memory and CPU of landing and indexing.

Makes a pair of image versions of ``--size`` (v1: disk-like bytes made
in 256 MiB segments, see :func:`precache.tests.fixtures.image_pairs.
synthetic_image`; v2: v1 with a 4 KiB block rewritten per MiB and an
insertion at a third), builds the delta artifact of v2 against v1 as the
service does (:mod:`precache.service.delta`, zstd ``-3``) and the full
artifact (``zstd -3``), serves both from precache's built-in web server,
then runs, each in a child process of its own, what an agent does:

(d) land v2 from the delta: the ``delta`` source over HTTP, assembly
    from v1 in a directory store, sha512 of the image, the store's
    landing (lock, inspection, fsync, rename);
(f) land v2 from the full artifact, the same way (the ``http`` source);
(i) index v1 and v2 with the agent's chunk index
    (:mod:`precache.agent.chunk_index`: FastCDC + BLAKE3 + sqlite).

For each: wall seconds, CPU seconds (user + system of the child), MB/s
of image bytes per wall second and per CPU second (one core) and the
child's peak RSS (``VmHWM``). Indexing must be faster per core than
landing, and an agent landing a 4 GiB image must stay under 100 MB of
RSS.

Usage, from the repository root::

    python tools/bench/agent_delta_benchmark.py [--size 4G]
        [--average 16384] [--workdir DIR]

Not a test: it prints figures (a 4 GiB pair needs about 15 GB of disk).
"""

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

import agent_download_benchmark as download_bench  # noqa: E402
import delta_benchmark  # noqa: E402
import image_pairs as pair_tool  # noqa: E402

from precache.objects import chunks  # noqa: E402
from precache.tests.fixtures import image_pairs  # noqa: E402

MB = 1e6
MiB = 1 << 20
SEGMENT = 256 * MiB
BLOCK = 4096


def make_pair(workdir, size, seed=1):
    """Write v1.raw and v2.raw of ``size`` bytes; return their sha512s."""
    rng = random.Random(seed)
    hashes = [hashlib.sha512(), hashlib.sha512()]
    paths = [os.path.join(workdir, name) for name in ('v1.raw', 'v2.raw')]
    with open(paths[0], 'wb') as v1_file, open(paths[1], 'wb') as v2_file:
        written = 0
        segment_number = 0
        while written < size:
            length = min(SEGMENT, size - written)
            v1 = image_pairs.synthetic_image(length, seed + segment_number)
            v2 = bytearray(v1)
            for _ in range(length // MiB):
                at = rng.randrange(length // BLOCK) * BLOCK
                v2[at:at + BLOCK] = rng.randbytes(BLOCK)[:length - at]
            if written <= size // 3 < written + length:
                at = size // 3 - written
                v2[at:at] = rng.randbytes(12345)
            for data, out, digest in ((v1, v1_file, hashes[0]),
                                      (v2, v2_file, hashes[1])):
                out.write(data)
                digest.update(data)
            written += length
            segment_number += 1
    return paths, [h.hexdigest() for h in hashes]


def make_artifacts(www, v1, v2, average):
    """The full and the delta artifacts of v2, in ``www``."""
    full = os.path.join(www, 'v2.raw.zst')
    subprocess.run(['zstd', '-q', '-f', '-3', '-T0', v2, '-o', full],
                   check=True)
    index = chunks.Index.of_file(v1, average)
    delta = os.path.join(www, 'v2.delta-v1.zst')
    delta_benchmark.write_delta(v2, index, 3, delta)
    return full, delta


def child(request):
    """One agent phase in this process; print a JSON result line."""
    from precache.agent import chunk_index
    from precache.agent import download
    from precache.common import malloc_tuning
    from precache.common import plugin
    from precache.conf import CONF
    from precache.objects import image as image_mod

    # As precache-agent does at its start (precache.cmd).
    malloc_tuning.tune()
    CONF([], project='precache', default_config_files=[])
    CONF.set_override('store', 'directory', group='agent')
    CONF.set_override('allowed_origins', [request['origin']], group='agent')
    CONF.set_override('disk_reserve_mb', 0, group='agent')
    store = plugin.load_plugin('precache.stores', 'directory', CONF)
    CONF.set_override('path', request['store'], group='directory_store')
    cpu_before = download_bench._self_cpu()
    started = time.monotonic()
    if request['phase'] == 'index':
        index = chunk_index.ChunkIndex(request['state'], request['average'])
        count = sum(index.add(os.path.join(request['store'], name))
                    for name in ('v1', 'v2'))
        result = {'image_bytes': request['both_sizes'], 'chunks': count,
                  'index_bytes': sum(
                      os.path.getsize(index.path + suffix)
                      for suffix in ('', '-wal')
                      if os.path.exists(index.path + suffix))}
    else:
        image = image_mod.ImageRecord(
            id='v2', disk_format='raw', size=request['size'],
            os_hash_algo='sha512', os_hash_value=request['sha512'])
        source = {'method': request['phase'], 'url': request['url'],
                  'compression': 'zstd', 'size': request['artifact_size']}
        if request['phase'] == 'delta':
            source['base'] = {'id': 'v1'}
        downloader = download.Downloader(CONF)
        received = {}

        def write(fileobj):
            received.update(downloader.download(image, [source], fileobj))

        store.land(image, write)
        downloader.close()
        result = {'image_bytes': request['size'],
                  'received': received['bytes_received']}
    result.update(seconds=time.monotonic() - started,
                  cpu_seconds=download_bench._self_cpu() - cpu_before,
                  maxrss_kib=peak_rss_kib())
    print(json.dumps(result))


def peak_rss_kib():
    """This process's peak RSS since it was executed (VmHWM).

    Not ``getrusage``: its ``ru_maxrss`` survives ``execve`` and would
    include the benchmark's own peak at the fork.
    """
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmHWM:'):
                return int(line.split()[1])
    return 0


def run_child(request):
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), '--child',
         json.dumps(request)], capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=REPO))
    if done.returncode:
        sys.exit('the %s phase failed:\n%s'
                 % (request['phase'], done.stderr[-3000:]))
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', default='4G', type=pair_tool.parse_size)
    parser.add_argument('--average', default=16384, type=int)
    parser.add_argument('--workdir')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        www = os.path.join(workdir, 'www')
        store = os.path.join(workdir, 'store')
        os.mkdir(www)
        os.mkdir(store)
        (v1, v2), (_sha1, sha2) = make_pair(workdir, args.size)
        full, delta = make_artifacts(www, v1, v2, args.average)
        os.link(v1, os.path.join(store, 'v1'))
        port = download_bench._free_port()
        server = subprocess.Popen(
            [sys.executable, '-c', download_bench.PRECACHE_HTTPD, www,
             str(port)], env=dict(os.environ, PYTHONPATH=REPO),
            stdout=subprocess.DEVNULL)
        try:
            download_bench._wait_for_port(port)
            origin = 'http://127.0.0.1:%d/' % port
            common = {'store': store, 'origin': origin,
                      'size': os.path.getsize(v2),
                      'both_sizes': os.path.getsize(v1) + os.path.getsize(v2),
                      'sha512': sha2, 'average': args.average,
                      'state': os.path.join(workdir, 'state')}
            runs = []
            for name, phase, artifact in (
                    ('(d) land v2 from the delta', 'delta', delta),
                    ('(f) land v2 from the full artifact', 'http', full)):
                result = run_child(dict(
                    common, phase=phase,
                    url=origin + os.path.basename(artifact),
                    artifact_size=os.path.getsize(artifact)))
                runs.append((name, result))
                os.unlink(os.path.join(store, 'v2'))
            os.link(v2, os.path.join(store, 'v2'))
            runs.append(('(i) index v1 and v2', run_child(dict(
                common, phase='index'))))
        finally:
            server.terminate()
            server.wait()
        print(format_table(runs, args, full, delta))


def format_table(runs, args, full, delta):
    lines = ['image: %d bytes (synthetic pair), %d-byte average chunks; '
             'full artifact %d bytes, delta %d bytes' % (
                 args.size, args.average,
                 os.path.getsize(full), os.path.getsize(delta)),
             '%-36s %8s %8s %10s %10s %10s' % (
                 'what', 'wall s', 'cpu s', 'MB/s wall', 'MB/s core',
                 'peak RSS')]
    for name, result in runs:
        image_mb = result['image_bytes'] / MB
        lines.append('%-36s %8.1f %8.1f %10.0f %10.0f %7.0f MiB' % (
            name, result['seconds'], result['cpu_seconds'],
            image_mb / result['seconds'],
            image_mb / max(result['cpu_seconds'], 1e-9),
            result['maxrss_kib'] / 1024.0))
    index = runs[-1][1]
    lines.append('index: %d chunks, %d bytes of sqlite (%.1f bytes a chunk)'
                 % (index['chunks'], index['index_bytes'],
                    index['index_bytes'] / max(index['chunks'], 1)))
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
