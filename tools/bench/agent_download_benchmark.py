"""Benchmark of the agent's download path against fair shell baselines.

Makes a disk-image-like file (tools/bench/imagegen.py), compresses it
with ``zstd -3``, serves the artifact from a local HTTP server and
measures, in the same run and against the same server (precache's
built-in httpd, which sends with sendfile(2), when the checkout has it;
else ``python3 -m http.server``):

(a) ``curl | zstd -d | openssl dgst -sha512``, writing nothing: the floor
    of the unavoidable work, hashing with OpenSSL like precache does
    (through hashlib);
(a0) ``curl | zstd -d | sha512sum``: the former yardstick (coreutils'
    sha512, slower than OpenSSL's), for comparison with older figures;
(b) a shell pipe doing all the agent's work: decompression, sha512 of
    the image, a sparse write (``dd conv=sparse``) and an fsync
    (``conv=fsync``);
(n) ``curl -s -o FILE URL``: the network alone;
(c) precache's Downloader, end to end, in a child process: download,
    zstd decompression, sha512 of the image, sparse write into a temp
    file of a Nova-like ``_base`` directory whose writeback starts while
    it is written (the store's
    :class:`~precache.agent.stores.writeback.WritebackFile`), fsync,
    rename;
(c0) the same with all the writeback left to the final fsync (as before
    the store started it early): what the early writeback buys;
(c1) the same with the source's sha256 of the artifact checked as well
    (as before the image's sha512 sufficed): what hashing once buys;
(c2) the same with glibc's malloc defaults (the daemons tune them:
    :mod:`precache.common.malloc_tuning`): what reusing freed chunks
    buys;
(t) (c) from a BitTorrent source: the artifact seeded on 127.0.0.1 by
    the bittorrent server's Seeder in a process of its own, fetched by
    the agent's libtorrent session (its CPU counts for the agent), one
    seed, no tracker, no web seed.

Each is run ``--repeat`` times, interleaved; the table shows the median
wall time, the MB/s of raw image bytes, the speed relative to (a) and (b)
(their time divided by ours: above 1 is faster), the median CPU seconds
(user + system of every process of the method; for precache, its process
from the start of the download to the end of the fsync) per GiB landed
and relative to (a)'s, the peak RSS and the allocated versus apparent size of
what was written. On a compute host those CPU seconds are taken from the
guests.

Usage::

    python tools/bench/agent_download_benchmark.py [--size-mib 1024]
        [--repeat 3] [--piece-size-kb 1024] [--workdir DIR] [--keep]

Not a test: it takes a minute and needs curl, zstd, openssl and dd.
"""

import argparse
import configparser
import hashlib
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import imagegen  # noqa: E402

MB = 1000 * 1000
GiB = 1024 ** 3

# Runs precache's built-in web server: root and port as arguments.
PRECACHE_HTTPD = """
from precache.service.servers import httpd
import sys
server = httpd.Server(('127.0.0.1', int(sys.argv[2])), sys.argv[1], 60, 64)
server.serve_forever()
"""


# Seeds the artifact with the bittorrent server's Seeder on 127.0.0.1:
# artifact path, piece size and web seed URL as arguments; prints the
# source's torrent, info-hash and peer, then seeds until stdin closes.
PRECACHE_SEED = """
import json
import sys
from precache.service.servers import seeding
from precache.torrent import metainfo
from precache.torrent import session
seed = session.Session(session.settings('127.0.0.1', 0), name='bench-seed')
torrent, key, _passkey = seeding.Seeder(seed).seed(
    'bench-image', sys.argv[1], 'artifact', int(sys.argv[2]), sys.argv[3], [])
print(json.dumps({'torrent': metainfo.encode(torrent), 'info_hash': key,
                  'peers': [metainfo.format_peer('127.0.0.1', seed.port)]}),
      flush=True)
sys.stdin.read()
seed.close()
"""


def _file_digest(path, algorithm):
    digest = hashlib.new(algorithm)
    with open(path, 'rb') as source:
        while True:
            block = source.read(4 * 1024 * 1024)
            if not block:
                return digest.hexdigest()
            digest.update(block)


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _wait_for_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(('127.0.0.1', port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError('the HTTP server did not start on port %d' % port)


def _entry_points_path(workdir):
    """Return a sys.path entry declaring precache's source plugins.

    When precache is not installed (a plain checkout), stevedore cannot
    find the ``precache.sources`` entry points of setup.cfg; a minimal
    dist-info directory built from setup.cfg declares them.
    """
    from importlib import metadata
    if any(ep.name == 'http' for ep in
           metadata.entry_points(group='precache.sources')):
        return None
    parser = configparser.ConfigParser()
    parser.read(os.path.join(REPO, 'setup.cfg'))
    path = os.path.join(workdir, 'entry-points')
    info = os.path.join(path, 'precache_bench-0.dist-info')
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(info, 'METADATA'), 'w') as out:
        out.write('Metadata-Version: 2.1\nName: precache-bench\n'
                  'Version: 0\n')
    with open(os.path.join(info, 'entry_points.txt'), 'w') as out:
        out.write('[precache.sources]\n%s\n'
                  % parser['entry_points']['precache.sources'].strip())
    return path


class Bench(object):

    def __init__(self, args):
        self.args = args
        self.workdir = args.workdir or tempfile.mkdtemp(
            prefix='precache-bench-', dir='/var/tmp')
        os.makedirs(self.workdir, exist_ok=True)
        self.raw = os.path.join(self.workdir, 'image.raw')
        self.artifact = self.raw + '.zst'
        self.base = os.path.join(self.workdir, 'instances', '_base')
        os.makedirs(self.base, exist_ok=True)
        self.server = None
        self.seeder = None

    def prepare(self):
        size = self.args.size_mib * 1024 * 1024
        print('Generating a %d MiB image in %s ...'
              % (self.args.size_mib, self.workdir))
        self.sha512 = imagegen.write_image(self.raw, size, self.args.seed)
        self.size = size
        print('Compressing it with zstd -3 ...')
        subprocess.run(['zstd', '-3', '-q', '-f', self.raw, '-o',
                        self.artifact], check=True)
        self.artifact_size = os.path.getsize(self.artifact)
        self.artifact_sha256 = _file_digest(self.artifact, 'sha256')
        stat = os.stat(self.raw)
        print('image: %d bytes (%d allocated); artifact: %d bytes (%.1f%%)'
              % (stat.st_size, stat.st_blocks * 512, self.artifact_size,
                 100.0 * self.artifact_size / stat.st_size))

    def serve(self):
        port = _free_port()
        server = self.args.server
        if server == 'auto':
            server = 'precache' if os.path.exists(
                os.path.join(REPO, 'precache', 'service', 'servers',
                             'httpd.py')) \
                else 'python'
        if server == 'precache':
            command = [sys.executable, '-c', PRECACHE_HTTPD, self.workdir,
                       str(port)]
            self.server_name = 'precache.service.servers.httpd (sendfile)'
        else:
            command = [sys.executable, '-m', 'http.server', '--bind',
                       '127.0.0.1', '--directory', self.workdir, str(port)]
            self.server_name = 'python3 -m http.server'
        env = dict(os.environ, PYTHONPATH=REPO)
        self.server = subprocess.Popen(command, env=env,
                                       stdout=subprocess.DEVNULL)
        _wait_for_port(port)
        self.url = 'http://127.0.0.1:%d/%s' % (
            port, os.path.basename(self.artifact))
        # Same page cache state for every run.
        _file_digest(self.artifact, 'md5')

    def seed(self):
        """Seed the artifact over BitTorrent from a process of its own."""
        env = dict(os.environ, PYTHONPATH=REPO)
        self.seeder = subprocess.Popen(
            [sys.executable, '-c', PRECACHE_SEED, self.artifact,
             str(self.args.piece_size_kb * 1024), self.url],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        line = self.seeder.stdout.readline()
        if not line:
            raise RuntimeError('the BitTorrent seed did not start')
        self.torrent = json.loads(line)

    def stop(self):
        if self.seeder is not None:
            self.seeder.stdin.close()
            self.seeder.wait()
        if self.server is not None:
            self.server.terminate()
            self.server.wait()
        if not self.args.keep and not self.args.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _shell(self, script):
        """Run ``script`` with bash; return its output, seconds and CPU."""
        before = _children_cpu()
        started = time.monotonic()
        out = subprocess.run(
            ['bash', '-c', 'set -e -o pipefail\n' + script], check=True,
            capture_output=True, text=True).stdout
        elapsed = time.monotonic() - started
        return out, {'seconds': elapsed,
                     'cpu_seconds': _children_cpu() - before}

    def _check_sha512(self, out, what):
        if out.split()[0] != self.sha512:
            raise RuntimeError('%s computed another sha512: %s'
                               % (what, out))

    def run_floor(self, hasher='openssl dgst -sha512 -r'):
        out, result = self._shell('curl -s -f %s | zstd -d | %s'
                                  % (self.url, hasher))
        self._check_sha512(out, hasher)
        return result

    def run_sha512sum(self):
        return self.run_floor('sha512sum')

    def run_shell_agent(self):
        landed = os.path.join(self.base, 'shell-image')
        out, result = self._shell(shell_agent_script(
            self.url, os.path.join(self.workdir, 'shell'), landed))
        self._check_sha512(out, 'the shell pipe')
        result.update(_written(landed))
        os.unlink(landed)
        return result

    def run_curl(self):
        target = os.path.join(self.workdir, 'curl.out')
        _out, result = self._shell('curl -s -f -o %s %s'
                                   % (target, self.url))
        os.unlink(target)
        return result

    def run_precache_hash_twice(self):
        return self.run_precache(hash_artifact=True)

    def run_precache_fsync_at_end(self):
        return self.run_precache(writeback=False)

    def run_precache_malloc_defaults(self):
        return self.run_precache(malloc_tuning=False)

    def run_precache_bittorrent(self):
        return self.run_precache(bittorrent=self.torrent)

    def run_precache(self, hash_artifact=False, writeback=True,
                     bittorrent=None, malloc_tuning=True):
        request = {'url': self.url, 'size': self.size, 'sha512': self.sha512,
                   'artifact_size': self.artifact_size,
                   'artifact_sha256': self.artifact_sha256,
                   'hash_artifact': hash_artifact,
                   'base': self.base, 'writeback': writeback,
                   'bittorrent': bittorrent, 'malloc_tuning': malloc_tuning,
                   'torrents': os.path.join(self.workdir, 'torrents')}
        env = dict(os.environ)
        paths = [REPO, _entry_points_path(self.workdir),
                 env.get('PYTHONPATH')]
        env['PYTHONPATH'] = os.pathsep.join(p for p in paths if p)
        started = time.monotonic()
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), '--child',
             json.dumps(request)], check=True, capture_output=True,
            text=True, env=env).stdout
        result = json.loads(out.strip().splitlines()[-1])
        result['process_seconds'] = time.monotonic() - started
        return result

    def measure(self, methods):
        """Run each method ``--repeat`` times; return each one's median.

        The runs are interleaved so that a burst of load on the machine
        hits every method alike, in a new order each round (seeded): on
        one machine whichever precache run came first after the shell
        pipes took 0.8 s and 1.5 CPU-seconds more for 1 GiB, whatever
        its method, and a fixed order gave that to ``(c)`` every time.
        Every run starts with no dirty page left by the one before
        (``sync``).
        """
        runs = {name: [] for name, _run in methods}
        for repeat in range(self.args.repeat):
            order = list(methods)
            random.Random(repeat).shuffle(order)
            for name, run in order:
                os.sync()
                runs[name].append(run())
        medians = {}
        for name, _run in methods:
            seconds = [r['seconds'] for r in runs[name]]
            cpu = [r['cpu_seconds'] for r in runs[name]]
            print('  %-38s %s  (CPU %s)' % (
                name, ' '.join('%.2fs' % s for s in seconds),
                ' '.join('%.2fs' % c for c in cpu)))
            median = statistics.median_low(seconds)
            medians[name] = dict(runs[name][seconds.index(median)],
                                 cpu_seconds=statistics.median_low(cpu))
        return medians

    def run(self):
        self.prepare()
        self.serve()
        self.seed()
        print('Server: %s, URL %s; %d run(s) each, interleaved (median '
              'shown)' % (self.server_name, self.url, self.args.repeat))
        print('Load average before: %s' % ' '.join(
            '%.2f' % x for x in os.getloadavg()))
        runs = self.measure([
            (FLOOR, self.run_floor),
            ('(a0) curl | zstd -d | sha512sum', self.run_sha512sum),
            (SHELL, self.run_shell_agent),
            ('(n) curl -s -o FILE (network only)', self.run_curl),
            (PRECACHE, self.run_precache),
            ('(c0) precache, all writeback at fsync',
             self.run_precache_fsync_at_end),
            ('(c1) precache, artifact hashed too',
             self.run_precache_hash_twice),
            ('(c2) precache, glibc malloc defaults',
             self.run_precache_malloc_defaults),
            (BITTORRENT, self.run_precache_bittorrent)])
        print('Load average after: %s' % ' '.join(
            '%.2f' % x for x in os.getloadavg()))
        print()
        print(format_table(runs, self.size))
        for name in (PRECACHE, BITTORRENT):
            print('%s details: %s' % (name.split()[0], json.dumps(
                runs[name], sort_keys=True)))


FLOOR = '(a) curl | zstd -d | openssl sha512'
SHELL = '(b) shell: zstd, sha512, dd'
PRECACHE = '(c) precache, incl. fsync'
BITTORRENT = '(t) precache, BitTorrent source'


def shell_agent_script(url, scratch, target):
    """A bash script doing the agent's work with standard tools.

    The image's sha512 is computed by OpenSSL; ``dd conv=sparse,fsync``,
    fed through a FIFO (so that the script waits for it), writes zero
    blocks as holes and fsyncs. Like the agent beside an image's sha512,
    it does not hash the artifact. Prints the sha512.
    """
    return """
rm -rf {s}; mkdir -p {s}; mkfifo {s}/image
dd if={s}/image of={t} bs=64K iflag=fullblock conv=sparse,fsync \\
    status=none &
write=$!
curl -s -f {u} | zstd -d | tee {s}/image | openssl dgst -sha512 -r
wait $write
rm -rf {s}
""".format(s=scratch, t=target, u=url)


def _children_cpu():
    """CPU seconds (user + system) of the waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _self_cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _written(path):
    stat = os.stat(path)
    return {'apparent': stat.st_size, 'allocated': stat.st_blocks * 512}


def format_table(runs, size):
    """Return the results table: ``runs`` is ``{method: result}``.

    Speeds are relative to (a) and (b) (their time over the method's:
    above 1 is faster), CPU per GiB landed relative to (a)'s.
    """
    gib = size / GiB
    floor, shell = runs[FLOOR], runs[SHELL]
    header = ('%-38s %7s %6s %7s %7s %6s %9s %7s %8s %15s' % (
        'method', 'wall s', 'MB/s', 'vs (a)', 'vs (b)', 'CPU s',
        'CPU s/GiB', 'CPU/(a)', 'peak RSS', 'alloc/apparent'))
    lines = [header, '-' * len(header)]
    for name, result in runs.items():
        seconds, cpu = result['seconds'], result['cpu_seconds']
        rss = result.get('maxrss_kib')
        written = '-'
        if 'apparent' in result:
            written = '%d/%d MiB' % (result['allocated'] >> 20,
                                     result['apparent'] >> 20)
        lines.append('%-38s %7.2f %6.0f %6.2fx %6.2fx %6.2f %9.2f %6.2fx '
                     '%8s %15s' % (
                         name, seconds, size / MB / seconds,
                         floor['seconds'] / seconds,
                         shell['seconds'] / seconds, cpu, cpu / gib,
                         cpu / floor['cpu_seconds'],
                         '%.0f MiB' % (rss / 1024.0) if rss else '-',
                         written))
    return '\n'.join(lines)


def child(request):
    """Download like the agent does; print a JSON result line."""
    from precache.agent import download
    from precache.agent.sources import bittorrent
    from precache.agent.stores import writeback
    from precache.common import fileutils
    from precache.common import verify
    from precache.conf import CONF
    from precache.objects import image as image_mod

    if request.get('malloc_tuning', True):
        # As precache-agent does at its start (precache.cmd).
        from precache.common import malloc_tuning
        malloc_tuning.tune()
    CONF([], project='precache', default_config_files=[])
    image = image_mod.ImageRecord(
        id='bench-image', disk_format='raw', size=request['size'],
        os_hash_algo='sha512', os_hash_value=request['sha512'])
    source = {'method': 'http', 'url': request['url'],
              'compression': 'zstd', 'size': request['artifact_size']}
    if request.get('bittorrent'):
        source = dict(request['bittorrent'], method='bittorrent',
                      compression='zstd', size=request['artifact_size'])
        # One local seed, no tracker: every byte comes from the seed.
        CONF.register_opts(bittorrent.bittorrent_source_opts,
                           group=bittorrent.GROUP)
        for name, value in (('download_dir', request['torrents']),
                            ('listen_host', '127.0.0.1'),
                            ('listen_port', 0), ('seed_time', 0),
                            ('web_seed_delay', -1),
                            ('first_copies', False)):
            CONF.set_override(name, value, group=bittorrent.GROUP)
    source.update(hash_algo='sha256', hash_value=request['artifact_sha256'])
    if request['hash_artifact']:
        # As before the image's sha512 sufficed: the source's sha256 of
        # the artifact is checked as well.
        verify.Verifier.strong = False
    sources = [source]
    final = os.path.join(request['base'], image.cache_name)
    fd, temp = tempfile.mkstemp(prefix=fileutils.TEMP_PREFIX,
                                dir=request['base'])
    cpu_before = _self_cpu()
    started = time.monotonic()
    fileobj = os.fdopen(fd, 'wb')
    if request.get('writeback', True):
        fileobj = writeback.WritebackFile(fileobj)
    downloader = download.Downloader(CONF)
    with fileobj:
        result = downloader.download(image, sources, fileobj)
        downloaded = time.monotonic()
        os.fsync(fileobj.fileno())
    os.rename(temp, final)
    fileutils.fsync_dir(request['base'])
    finished = time.monotonic()
    result.update(_written(final))
    os.unlink(final)
    result.update(
        seconds=finished - started, download_seconds=downloaded - started,
        fsync_seconds=finished - downloaded,
        cpu_seconds=_self_cpu() - cpu_before,
        maxrss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    downloader.close()  # BitTorrent: stops seeding, removes its data
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(
        description='Benchmark precache\'s agent download path.')
    parser.add_argument('--size-mib', type=int, default=1024)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--workdir',
                        help='keep the image here (reused between runs '
                             'only if you pass the same directory; it is '
                             'regenerated anyway)')
    parser.add_argument('--server', choices=('auto', 'precache', 'python'),
                        default='auto',
                        help='the web server: precache\'s httpd (sendfile) '
                             'when present, else python3 -m http.server')
    parser.add_argument('--piece-size-kb', type=int, default=1024,
                        help='piece size of the BitTorrent source\'s '
                             'torrent (the bittorrent server\'s default)')
    parser.add_argument('--keep', action='store_true',
                        help='do not remove the temporary work directory')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    for tool in ('bash', 'curl', 'dd', 'openssl', 'sha512sum', 'zstd'):
        if not shutil.which(tool):
            sys.exit('%s is needed for the comparison' % tool)
    bench = Bench(args)
    try:
        bench.run()
    finally:
        bench.stop()


if __name__ == '__main__':
    main()
