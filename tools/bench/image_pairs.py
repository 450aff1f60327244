"""Build two versions of an image, for delta tests and benchmarks.

``synthetic``: a disk-like raw image (random, text and zero extents) and
a second version with scattered 4 KiB block changes and an insertion
that shifts everything after it (see
:mod:`precache.tests.fixtures.image_pairs`).

``debian``: two versions of a real ext4 file system built from Debian
packages, like a monthly refresh: v1 holds the files of ``--packages``;
v2 drops the first of them, adds ``--added`` and rewrites a config file.
Each version is ``apt-get download`` + ``dpkg-deb -x`` into a tree,
``mkfs.ext4 -d tree`` into a raw file, and ``qemu-img convert`` to
qcow2. Needs apt-get, dpkg-deb, e2fsprogs and qemu-img.

Usage, from the repository root::

    python tools/bench/image_pairs.py synthetic --size 256M OUT_DIR
    python tools/bench/image_pairs.py debian OUT_DIR \\
        [--packages p1,p2,...] [--added p3,...] [--fs-size 512M]

Writes ``OUT_DIR/v1.<ext>`` and ``OUT_DIR/v2.<ext>`` (``raw`` for the
synthetic pair, ``qcow2`` plus the ``raw`` forms for the Debian pair).
"""

import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))

from precache.tests.fixtures import image_pairs  # noqa: E402

DEFAULT_PACKAGES = ('python3.11-minimal,libpython3.11-stdlib,'
                    'perl-modules-5.36,coreutils,bash,util-linux,libc6,'
                    'openssl,vim-runtime,tzdata,locales')
DEFAULT_ADDED = 'git,libssl3'


def parse_size(text):
    units = {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}
    if text[-1:].upper() in units:
        return int(float(text[:-1]) * units[text[-1:].upper()])
    return int(text)


def synthetic(out_dir, size, seed):
    v1, v2 = image_pairs.synthetic_pair(size, seed=seed,
                                        changed_blocks=size // (1 << 20))
    paths = []
    for name, data in (('v1.raw', v1), ('v2.raw', v2)):
        path = os.path.join(out_dir, name)
        with open(path, 'wb') as f:
            f.write(data)
        paths.append(path)
    return paths


def _extract(packages, tree, cache):
    os.makedirs(tree, exist_ok=True)
    subprocess.run(['apt-get', 'download', '-q'] + packages, cwd=cache,
                   check=True, stdout=subprocess.DEVNULL)
    for name in sorted(os.listdir(cache)):
        if name.endswith('.deb') and name.split('_')[0] in packages:
            subprocess.run(['dpkg-deb', '-x', os.path.join(cache, name),
                            tree], check=True)


def _filesystem(tree, raw, qcow2, fs_size):
    with open(raw, 'wb') as f:
        f.truncate(fs_size)
    # Fixed UUID and hash seed: two builds differ by their files only.
    subprocess.run(['mkfs.ext4', '-q', '-F', '-d', tree, '-U',
                    '8c1b1b4e-6f34-4e0c-9e57-4e2f6a0d2b11', '-E',
                    'hash_seed=5c1b1b4e-6f34-4e0c-9e57-4e2f6a0d2b11', raw],
                   check=True, env=dict(os.environ, E2FSPROGS_FAKE_TIME='1'))
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw,
                    qcow2], check=True)


def debian(out_dir, packages, added, fs_size):
    with tempfile.TemporaryDirectory(dir=out_dir) as work:
        cache = os.path.join(work, 'debs')
        os.makedirs(cache)
        v1_tree = os.path.join(work, 'v1')
        v2_tree = os.path.join(work, 'v2')
        _extract(packages, v1_tree, cache)
        _extract(packages[1:] + added, v2_tree, cache)
        os.makedirs(os.path.join(v2_tree, 'etc'), exist_ok=True)
        with open(os.path.join(v2_tree, 'etc', 'precache-release'),
                  'w') as f:
            f.write('2026.12 monthly refresh\n')
        paths = []
        for name, tree in (('v1', v1_tree), ('v2', v2_tree)):
            raw = os.path.join(out_dir, name + '.raw')
            qcow2 = os.path.join(out_dir, name + '.qcow2')
            _filesystem(tree, raw, qcow2, fs_size)
            paths.append(qcow2)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('kind', choices=['synthetic', 'debian'])
    parser.add_argument('out_dir')
    parser.add_argument('--size', default='256M', type=parse_size)
    parser.add_argument('--seed', default=1, type=int)
    parser.add_argument('--packages', default=DEFAULT_PACKAGES)
    parser.add_argument('--added', default=DEFAULT_ADDED)
    parser.add_argument('--fs-size', default='768M', type=parse_size)
    args = parser.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    if args.kind == 'synthetic':
        paths = synthetic(args.out_dir, args.size, args.seed)
    else:
        paths = debian(args.out_dir, args.packages.split(','),
                       args.added.split(','), args.fs_size)
    for path in paths:
        print(path, os.path.getsize(path))


if __name__ == '__main__':
    main()
