"""Bytes per host for a new image version: full vs delta vs zstd patch.

For a pair of image versions (``tools/bench/image_pairs.py``), measures
in one run what travels to a host that holds v1:

(a) the full artifact: v2 compressed with zstd at ``--level`` (what the
    ``http`` server serves today);
(b) the delta artifact (:mod:`precache.service.delta`): the chunks of v2
    the host's copy of v1 lacks, zstd at the same level, for each
    ``--average`` chunk size;
(c) ``zstd --patch-from=v1`` at the same level: the strongest practical
    delta compressor (needs both whole files, cannot be cached by
    proxies); the yardstick for (b).

The host's copy of v1 is its raw form when v1 is not raw (agents convert
to raw, Nova's default). Also printed: chunk indexing speed (MB/s on one
core: FastCDC + BLAKE3, what the service spends per image) and assembly
speed (MB/s of image bytes on one core: what an agent spends instead of
decompressing the full artifact; writing to disk not included).

Usage, from the repository root::

    python tools/bench/delta_benchmark.py V1 V2 [--level 3]
        [--average 16384,65536] [--workdir DIR]

Not a test: it prints ratios side by side.
"""

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))

import zstandard  # noqa: E402

from precache.agent import assembly  # noqa: E402
from precache.objects import chunks  # noqa: E402
from precache.objects import delta  # noqa: E402
from precache.objects import image as image_mod  # noqa: E402


class _Counter(io.RawIOBase):
    def __init__(self):
        self.size = 0

    def writable(self):
        return True

    def write(self, data):
        self.size += len(data)
        return len(data)


def disk_format(path):
    out = subprocess.run(['qemu-img', 'info', '--output=json', path],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)['format']


def host_form(path, workdir):
    """The file a host holds for ``path``: its raw conversion."""
    if disk_format(path) == 'raw':
        return path
    raw = os.path.join(workdir, os.path.basename(path) + '.host.raw')
    subprocess.run(['qemu-img', 'convert', '-O', 'raw', path, raw],
                   check=True)
    return raw


def full_bytes(path, level):
    counter = _Counter()
    cctx = zstandard.ZstdCompressor(level=level, threads=-1)
    with open(path, 'rb') as src:
        cctx.copy_stream(src, counter)
    return counter.size


def write_delta(v2, base_index, level, path):
    """Write the delta artifact; return ``(its size, bytes copied)``."""
    cctx = zstandard.ZstdCompressor(level=level)
    with open(path, 'wb') as out:
        with cctx.stream_writer(out, closefd=False) as packed:
            with open(v2, 'rb') as src:
                writer = delta.write_delta(src, base_index, packed)
    return os.path.getsize(path), writer.copied


def assembly_speed(path, base, image):
    """MB/s (per core) at which an agent assembles the image."""
    sink = _Counter()
    started = time.process_time()
    decoder = assembly.Decoder(assembly.Assembler(image, 'v1', base, sink),
                               'zstd', 1024 * 1024)
    with open(path, 'rb') as src:
        for piece in iter(lambda: src.read(1024 * 1024), b''):
            decoder.write(piece)
    decoder.close()
    return sink.size / 1e6 / max(time.process_time() - started, 1e-9)


def patch_from_bytes(v1, v2, level, workdir):
    out = os.path.join(workdir, 'patch.zst')
    subprocess.run(['zstd', '-q', '-f', '-%d' % level, '--patch-from=' + v1,
                    v2, '-o', out], check=True)
    size = os.path.getsize(out)
    os.unlink(out)
    return size


def index_speed(path, average):
    started = time.process_time()
    index = chunks.Index.of_file(path, average)
    cpu = time.process_time() - started
    return index, index.size / 1e6 / max(cpu, 1e-9)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('v1')
    parser.add_argument('v2')
    parser.add_argument('--level', type=int, default=3)
    parser.add_argument('--average', default='16384,65536')
    parser.add_argument('--workdir')
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        base = host_form(args.v1, workdir)
        size = os.path.getsize(args.v2)
        full = full_bytes(args.v2, args.level)
        patch = patch_from_bytes(args.v1, args.v2, args.level, workdir)
        print('v2: %d bytes (%s); host copy of v1: %d bytes (%s)'
              % (size, disk_format(args.v2), os.path.getsize(base),
                 'raw'))
        print('%-26s %14s %10s %12s' % ('what travels', 'bytes', 'vs full',
                                        'vs patch'))
        print('%-26s %14d %10.3f %12.2f' % ('full zstd -%d' % args.level,
                                            full, 1.0, full / patch))
        print('%-26s %14d %10.3f %12.2f' % (
            'zstd --patch-from=v1 -%d' % args.level, patch, patch / full,
            1.0))
        for average in (int(a) for a in args.average.split(',')):
            index, cpu_speed = index_speed(base, average)
            artifact = os.path.join(workdir, 'delta.zst')
            size_delta, copied = write_delta(args.v2, index, args.level,
                                             artifact)
            assembled = assembly_speed(artifact, base,
                                       image_mod.ImageRecord(id='v2'))
            print('%-26s %14d %10.3f %12.2f   (%.0f%% of v2 from the base; '
                  'index %d chunks, %d bytes; indexing %.0f MB/s, assembly '
                  '%.0f MB/s per core)'
                  % ('delta, %d KiB chunks' % (average // 1024), size_delta,
                     size_delta / full, size_delta / patch,
                     100.0 * copied / max(size, 1), len(index.entries),
                     len(index.encode()), cpu_speed, assembled))


if __name__ == '__main__':
    main()
