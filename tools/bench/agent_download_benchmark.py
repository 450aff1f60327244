"""Benchmark of the agent's download path against a shell pipeline.

Makes a disk-image-like file (tools/bench/imagegen.py), compresses it
with ``zstd -3``, serves the artifact from a local HTTP server and
measures, in the same run and against the same server (precache's
built-in httpd, which sends with sendfile(2), when the checkout has it;
else ``python3 -m http.server``):

(a) ``curl -s URL | zstd -d | sha512sum``: the yardstick;
(b) ``curl -s -o FILE URL``: the network alone;
(c) precache's Downloader, end to end, in a child process: download,
    zstd decompression, sha256 of what travels, sha512 of the image, sparse
    write into a temp file of a Nova-like ``_base`` directory, fsync,
    rename. Reported once with and once without the fsync.

Each is run ``--repeat`` times; the table shows the median wall time,
the MB/s of raw image bytes, the ratio to (a), the peak RSS of our
process and the allocated versus apparent size of what was written.

Usage::

    python tools/bench/agent_download_benchmark.py [--size-mib 1024]
        [--repeat 3] [--workdir DIR] [--keep]

Not a test: it takes a minute and needs curl and zstd.
"""

import argparse
import configparser
import hashlib
import json
import os
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

# Runs precache's built-in web server: root and port as arguments.
PRECACHE_HTTPD = """
from precache.service.servers import httpd
import sys
server = httpd.Server(('127.0.0.1', int(sys.argv[2])), sys.argv[1], 60, 64)
server.serve_forever()
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
                os.path.join(REPO, 'precache', 'servers', 'httpd.py')) \
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

    def stop(self):
        if self.server is not None:
            self.server.terminate()
            self.server.wait()
        if not self.args.keep and not self.args.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def run_pipe(self):
        started = time.monotonic()
        out = subprocess.run(
            'curl -s -f %s | zstd -d | sha512sum' % self.url, shell=True,
            check=True, capture_output=True, text=True).stdout
        elapsed = time.monotonic() - started
        if out.split()[0] != self.sha512:
            raise RuntimeError('the pipe computed another sha512: %s' % out)
        return {'seconds': elapsed}

    def run_curl(self):
        target = os.path.join(self.workdir, 'curl.out')
        started = time.monotonic()
        subprocess.run(['curl', '-s', '-f', '-o', target, self.url],
                       check=True)
        elapsed = time.monotonic() - started
        os.unlink(target)
        return {'seconds': elapsed}

    def run_precache(self):
        request = {'url': self.url, 'size': self.size, 'sha512': self.sha512,
                   'artifact_size': self.artifact_size,
                   'artifact_sha256': self.artifact_sha256,
                   'base': self.base}
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
        hits every method alike.
        """
        runs = {name: [] for name, _run in methods}
        for _ in range(self.args.repeat):
            for name, run in methods:
                runs[name].append(run())
        medians = {}
        for name, _run in methods:
            seconds = [r['seconds'] for r in runs[name]]
            shown = ' '.join('%.2fs' % s for s in seconds)
            print('  %-34s %s' % (name, shown))
            median = statistics.median_low(seconds)
            medians[name] = runs[name][seconds.index(median)]
        return medians

    def run(self):
        self.prepare()
        self.serve()
        print('Server: %s, URL %s; %d run(s) each, interleaved (median '
              'shown)' % (self.server_name, self.url, self.args.repeat))
        print('Load average before: %s' % ' '.join(
            '%.2f' % x for x in os.getloadavg()))
        runs = self.measure([('(a) curl | zstd -d | sha512sum',
                              self.run_pipe),
                             ('(b) curl -s -o FILE', self.run_curl),
                             ('(c) precache Downloader',
                              self.run_precache)])
        pipe, curl, ours = runs.values()
        rows = [
            ('(a) curl | zstd -d | sha512sum', pipe['seconds'], None, None),
            ('(b) curl -s -o FILE (network only)', curl['seconds'], None,
             None),
            ('(c) precache, incl. fsync', ours['seconds'],
             ours['maxrss_kib'], ours),
            ('(c) precache, before fsync', ours['download_seconds'],
             ours['maxrss_kib'], ours),
        ]
        self.print_table(rows, pipe['seconds'])
        print('(c) details: %s' % json.dumps(ours, sort_keys=True))

    def print_table(self, rows, pipe_seconds):
        header = ('%-36s %8s %9s %8s %10s %23s'
                  % ('method', 'wall s', 'MB/s raw', 'vs (a)', 'peak RSS',
                     'allocated / apparent'))
        print()
        print(header)
        print('-' * len(header))
        for name, seconds, rss, result in rows:
            written = '-'
            if result:
                written = '%d / %d MiB' % (result['allocated'] >> 20,
                                           result['apparent'] >> 20)
            print('%-36s %8.2f %9.0f %7.2fx %10s %23s'
                  % (name, seconds, self.size / MB / seconds,
                     pipe_seconds / seconds,
                     '%.1f MiB' % (rss / 1024.0) if rss else '-', written))


def child(request):
    """Download like the agent does; print a JSON result line."""
    from precache.agent import download
    from precache.common import fileutils
    from precache.conf import CONF
    from precache.objects import image as image_mod

    CONF([], project='precache', default_config_files=[])
    image = image_mod.ImageRecord(
        id='bench-image', disk_format='raw', size=request['size'],
        os_hash_algo='sha512', os_hash_value=request['sha512'])
    sources = [{'method': 'http', 'url': request['url'],
                'compression': 'zstd', 'size': request['artifact_size'],
                'hash_algo': 'sha256',
                'hash_value': request['artifact_sha256']}]
    final = os.path.join(request['base'], image.cache_name)
    fd, temp = tempfile.mkstemp(prefix=fileutils.TEMP_PREFIX,
                                dir=request['base'])
    started = time.monotonic()
    with os.fdopen(fd, 'wb') as fileobj:
        result = download.Downloader(CONF).download(image, sources, fileobj)
        downloaded = time.monotonic()
        os.fsync(fileobj.fileno())
    os.rename(temp, final)
    fileutils.fsync_dir(request['base'])
    finished = time.monotonic()
    stat = os.stat(final)
    os.unlink(final)
    result.update(
        seconds=finished - started, download_seconds=downloaded - started,
        fsync_seconds=finished - downloaded, apparent=stat.st_size,
        allocated=stat.st_blocks * 512,
        maxrss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
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
    parser.add_argument('--keep', action='store_true',
                        help='do not remove the temporary work directory')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    for tool in ('curl', 'zstd', 'sha512sum'):
        if not shutil.which(tool):
            sys.exit('%s is needed for the comparison' % tool)
    bench = Bench(args)
    try:
        bench.run()
    finally:
        bench.stop()


if __name__ == '__main__':
    main()
