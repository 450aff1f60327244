"""Make a disk-image-like file for benchmarks (shared by tools/bench/*).

A real VM image is not uniform: long runs of zeros (unused space), text
(configuration, scripts, logs), machine code and data that compress
moderately, and already-compressed files that do not compress at all.
:func:`write_image` lays out extents of each kind, chosen by a seeded RNG,
so the same seed and size always give the same bytes. zstd -3 shrinks the
default mix to roughly a third.

Usage as a script::

    python tools/bench/imagegen.py PATH [--size-mib 1024] [--seed 0]
"""

import argparse
import hashlib
import os
import random

MIB = 1024 * 1024

#: (kind, weight, longest extent in MiB)
#: By bytes: about 45% zeros, 21% text, 21% code, 13% random.
DEFAULT_MIX = (
    ('zeros', 28, 16),
    ('text', 25, 8),
    ('code', 25, 8),
    ('random', 15, 8),
)


class _Kinds(object):
    """Produces extents of each kind of content."""

    def __init__(self, rng):
        self._rng = rng
        words = [self._word() for _ in range(4096)]
        lines = []
        size = 0
        while size < 8 * MIB:
            line = ' '.join(rng.choices(words, k=rng.randrange(3, 14)))
            lines.append(line)
            size += len(line) + 1
        self._text = ('\n'.join(lines) + '\n').encode('ascii')
        # Bytes of "code": a skewed distribution, about half zeros and
        # small values, like machine code and binary data structures.
        table = bytes(0 if i < 96 else (i % 48 if i < 176 else i)
                      for i in range(256))
        self._code_table = table

    def _word(self):
        letters = 'etaoinshrdlcumwfgypbvkjxqz_./-0123456789'
        return ''.join(self._rng.choices(letters,
                                         k=self._rng.randrange(2, 11)))

    def zeros(self, size):
        return None  # written as a hole

    def text(self, size):
        start = self._rng.randrange(len(self._text) - size)
        return self._text[start:start + size]

    def code(self, size):
        return self._rng.randbytes(size).translate(self._code_table)

    def random(self, size):
        return self._rng.randbytes(size)


def write_image(path, size, seed=0, mix=DEFAULT_MIX):
    """Write a ``size``-byte image to ``path``; return its sha512 digest.

    Zero extents are left as holes, so writing is fast and the file takes
    only the space of its data.

    :param path: the file to (over)write.
    :param size: the image's length in bytes.
    :param seed: the RNG seed; same seed and size, same bytes.
    :param mix: ``(kind, weight, longest extent in MiB)`` tuples.
    :returns: the hex sha512 of the image's bytes.
    """
    rng = random.Random(seed)
    kinds = _Kinds(rng)
    names = [kind for kind, _weight, _longest in mix]
    weights = [weight for _kind, weight, _longest in mix]
    longest = {kind: mib for kind, _weight, mib in mix}
    digest = hashlib.sha512()
    zero_mib = bytes(MIB)
    with open(path, 'wb') as out:
        out.truncate(0)
        pos = 0
        while pos < size:
            kind = rng.choices(names, weights)[0]
            extent = min(size - pos,
                         rng.randrange(1, longest[kind] + 1) * MIB)
            for offset in range(0, extent, MIB):
                length = min(MIB, extent - offset)
                data = getattr(kinds, kind)(length)
                if data is None:
                    digest.update(zero_mib[:length])
                else:
                    out.seek(pos + offset)
                    out.write(data)
                    digest.update(data)
            pos += extent
        out.truncate(size)
    return digest.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('path')
    parser.add_argument('--size-mib', type=int, default=1024)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    digest = write_image(args.path, args.size_mib * MIB, args.seed)
    stat = os.stat(args.path)
    print('%s: %d bytes (%d allocated), sha512 %s'
          % (args.path, stat.st_size, stat.st_blocks * 512, digest))


if __name__ == '__main__':
    main()
