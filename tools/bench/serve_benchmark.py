"""Benchmark of the http image server's compression against zstd's CLI.

Makes a disk-image-like file (tools/bench/imagegen.py: extents of zeros,
text, code-like bytes and random bytes) or takes one with ``--image``,
then measures in the same run, interleaved round after round so that a
burst of load on the machine hits both alike:

(a) ``zstd -3 -T0 -q -f IMAGE -o FILE``: the yardstick, writing to a file
    in the work directory (same disk as ours); shown once as the process's
    wall time and once with an ``fsync`` of its output added;
(b) ``HTTPServer.serve(image, IMAGE)`` with the ``file`` fetcher's
    semantics (the image is already local): zstd level 3, one worker per
    CPU, sha256 of the artifact, written with
    :func:`precache.common.fileutils.atomic_write` (which fsyncs) into a fresh
    document root each round.

The image is read once beforehand, so both read it from the page cache;
outputs are removed and ``sync`` run between runs, outside the timings.
The table shows the median and best wall times, MB/s of image bytes, our
speed relative to zstd and the compression ratios. Finally the last
artifact is decompressed with ``zstd -d`` and checked against the image's
sha512, and the cost of serving an unchanged image is shown.

Usage, from the repository root::

    python tools/bench/serve_benchmark.py [--size 1G] [--image PATH]
        [--repeat 5] [--workdir DIR] [--keep]

Not a test: it takes a minute and needs the zstd command.
"""

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [HERE, REPO]

import imagegen  # noqa: E402
from oslo_config import cfg  # noqa: E402
import zstandard  # noqa: E402

from precache.objects import image as image_mod  # noqa: E402
from precache.service.servers import http as http_server  # noqa: E402

MB = 1000 * 1000
_UNITS = {'': 1, 'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
ZSTD_COMMAND = ['zstd', '-3', '-T0', '-q', '-f']


def parse_size(text):
    """Parse ``1G``, ``512M``, ``4096K`` or a byte count (powers of 2)."""
    text = text.strip().upper().removesuffix('IB').removesuffix('B')
    unit = text[-1:] if text[-1:] in _UNITS else ''
    return int(float(text[:len(text) - len(unit)]) * _UNITS[unit])


def read_through(path):
    """Read a file once so that every run finds it in the page cache."""
    with open(path, 'rb', buffering=0) as f:
        while f.read(8 * 1024 * 1024):
            pass


def cpu_seconds(who):
    """User plus system CPU seconds used so far by ``who`` (getrusage)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Bench(object):

    def __init__(self, args):
        self.args = args
        self.workdir = args.workdir or tempfile.mkdtemp(
            prefix='precache-serve-bench-', dir='/var/tmp')
        os.makedirs(self.workdir, exist_ok=True)
        self.zstd_out = os.path.join(self.workdir, 'zstd-cli.img.zst')
        self.times = {'zstd': [], 'zstd+fsync': [], 'ours': []}
        self.cpu = {'zstd': [], 'ours': []}

    def prepare(self):
        if self.args.image:
            self.path = self.args.image
            with open(self.path, 'rb') as f:
                sha512 = hashlib.file_digest(f, 'sha512').hexdigest()
        else:
            self.path = os.path.join(self.workdir, 'image.raw')
            print('Generating a %d MiB image in %s ...'
                  % (self.args.size >> 20, self.workdir))
            sha512 = imagegen.write_image(self.path, self.args.size,
                                          self.args.seed)
        self.size = os.path.getsize(self.path)
        self.image = image_mod.ImageRecord(
            id='bench-image', disk_format='raw', size=self.size,
            os_hash_algo='sha512', os_hash_value=sha512)
        read_through(self.path)

    def make_server(self, root):
        conf = cfg.ConfigOpts()
        http_server.HTTPServer.register_opts(conf)
        conf([], project='precache', default_config_files=[])
        for name, value in (('document_root', root), ('listen', False),
                            ('base_url', 'http://origin.invalid:8780'),
                            ('compression_threads', self.args.threads)):
            conf.set_override(name, value, group=http_server.GROUP)
        server = http_server.HTTPServer(conf)
        server.start()
        return server

    def run_zstd(self):
        cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        subprocess.run(ZSTD_COMMAND + [self.path, '-o', self.zstd_out],
                       check=True)
        finished = time.monotonic()
        self.cpu['zstd'].append(cpu_seconds(resource.RUSAGE_CHILDREN) - cpu)
        fsync_path(self.zstd_out)
        synced = time.monotonic()
        self.times['zstd'].append(finished - started)
        self.times['zstd+fsync'].append(synced - started)
        self.zstd_size = os.path.getsize(self.zstd_out)
        os.unlink(self.zstd_out)

    def run_ours(self, index):
        root = os.path.join(self.workdir, 'www-%d' % index)
        server = self.make_server(root)
        cpu = cpu_seconds(resource.RUSAGE_SELF)
        started = time.monotonic()
        self.source = server.serve(self.image, self.path)[0]
        self.times['ours'].append(time.monotonic() - started)
        self.cpu['ours'].append(cpu_seconds(resource.RUSAGE_SELF) - cpu)
        started = time.monotonic()
        server.serve(self.image, self.path)
        self.unchanged_seconds = time.monotonic() - started
        self.artifact = os.path.join(
            root, *self.source['url'].split('/')[-2:])
        if index < self.args.repeat - 1:
            shutil.rmtree(root)

    def measure(self):
        for index in range(self.args.repeat):
            os.sync()
            self.run_zstd()
            os.sync()
            self.run_ours(index)
        for name, seconds in self.times.items():
            print('  %-12s %s' % (name, ' '.join('%.2fs' % s
                                                 for s in seconds)))
        for name, seconds in self.cpu.items():
            print('  %-12s %s' % (name + ' cpu', ' '.join(
                '%.2fs' % s for s in seconds)))

    def verify(self):
        out = subprocess.run(
            'zstd -dc %s | sha512sum' % self.artifact, shell=True,
            check=True, capture_output=True, text=True).stdout
        return out.split()[0] == self.image.os_hash_value

    def run(self):
        self.prepare()
        print('Image: %s, %d bytes (%d allocated); input in page cache'
              % (self.path, self.size, os.stat(self.path).st_blocks * 512))
        print('Work directory (outputs of both): %s' % self.workdir)
        print('CPUs: %d; %s; python-zstandard %s (libzstd %s)'
              % (os.cpu_count(), _zstd_version(), zstandard.__version__,
                 '.'.join(map(str, zstandard.ZSTD_VERSION))))
        print('Load average before: %s' % ' '.join(
            '%.2f' % x for x in os.getloadavg()))
        print('%d round(s), interleaved:' % self.args.repeat)
        self.measure()
        self.print_table()
        print('Artifact decompresses to the image (sha512): %s'
              % ('yes' if self.verify() else 'NO'))
        print('serve() of the unchanged image: %.1f ms'
              % (self.unchanged_seconds * 1000))

    def print_table(self):
        zstd = statistics.median(self.times['zstd'])
        zstd_fsync = statistics.median(self.times['zstd+fsync'])
        rows = [
            ('(a) zstd -3 -T0 -o FILE', 'zstd', 'zstd', self.zstd_size),
            ('(a) zstd -3 -T0 -o FILE + fsync', 'zstd+fsync', 'zstd',
             self.zstd_size),
            ('(b) HTTPServer.serve() (fsyncs)', 'ours', 'ours',
             self.source['size']),
        ]
        header = ('%-34s %8s %8s %9s %9s %10s %7s %6s'
                  % ('method', 'median s', 'best s', 'MB/s', 'vs (a)',
                     'vs (a)+f', 'cpu s', 'ratio'))
        print()
        print(header)
        print('-' * len(header))
        for name, key, cpu_key, out_size in rows:
            median = statistics.median(self.times[key])
            print('%-34s %8.2f %8.2f %9.0f %9.2f %10.2f %7.2f %6.2f'
                  % (name, median, min(self.times[key]),
                     self.size / MB / median, zstd / median,
                     zstd_fsync / median,
                     statistics.median(self.cpu[cpu_key]),
                     self.size / out_size))
        print('MB/s: image bytes per second of the median run. vs (a), '
              'vs (a)+f: the row\'s speed relative to zstd without and '
              'with the fsync (>1: faster). cpu s: median user+system CPU '
              'seconds, which load on the machine does not inflate. ratio: '
              'image size / compressed size.')

    def cleanup(self):
        if not self.args.keep and not self.args.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _zstd_version():
    return subprocess.run(['zstd', '--version'], capture_output=True,
                          text=True).stdout.strip().strip('*').strip()


def main():
    parser = argparse.ArgumentParser(
        description='Benchmark the http image server\'s compression.')
    parser.add_argument('--size', type=parse_size, default=1 << 30,
                        help='size of the generated image: 1G, 512M, ...')
    parser.add_argument('--image', help='use this file instead')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--threads', type=int, default=-1,
                        help='[http_server] compression_threads')
    parser.add_argument('--workdir',
                        help='where the image and the outputs go (default: '
                             'a new directory in /var/tmp)')
    parser.add_argument('--keep', action='store_true',
                        help='do not remove the temporary work directory')
    args = parser.parse_args()
    if not shutil.which('zstd'):
        sys.exit('the zstd command is needed for the comparison')
    bench = Bench(args)
    try:
        bench.run()
    finally:
        bench.cleanup()


if __name__ == '__main__':
    main()
