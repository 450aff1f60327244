"""Tests of the delta artifact format."""

import io

from precache.objects import chunks
from precache.objects import delta
from precache.tests import base
from precache.tests.fixtures import image_pairs


def _parse(blob, piece=1000):
    parser = delta.Parser()
    records = []
    for start in range(0, len(blob), piece):
        records.extend(parser.feed(blob[start:start + piece]))
    parser.close()
    return records


def _apply(records, base_bytes):
    out = bytearray()
    for record in records:
        if record[0] == delta.COPY:
            _kind, offset, length, name = record
            data = base_bytes[offset:offset + length]
            assert chunks.digest(data) == name
            out += data
        elif record[0] == delta.DATA:
            out += record[1]
    return bytes(out)


class TestDeltaFormat(base.TestCase):

    def setUp(self):
        super().setUp()
        self.v1, self.v2 = image_pairs.synthetic_pair(1024 * 1024,
                                                      changed_blocks=4)
        self.index = chunks.Index(4096, [
            (offset, len(data), chunks.digest(data)) for offset, data in
            chunks.iter_chunks(io.BytesIO(self.v1), 4096)])

    def write(self):
        out = io.BytesIO()
        writer = delta.write_delta(io.BytesIO(self.v2), self.index, out)
        return out.getvalue(), writer

    def test_round_trip(self):
        blob, writer = self.write()
        records = _parse(blob)
        self.assertEqual(self.v2, _apply(records, self.v1))
        self.assertEqual((delta.END, len(self.v2)), records[-1])
        self.assertEqual(len(self.v2), writer.size)
        self.assertGreater(writer.copied, 0.8 * len(self.v2))

    def test_adjacent_chunks_make_one_copy_record(self):
        blob, _writer = self.write()
        copies = [r for r in _parse(blob) if r[0] == delta.COPY]
        # 4 changed blocks and one insertion: a few runs (repeated chunks,
        # zeros, break some), not one record per 4 KiB chunk.
        self.assertLess(len(copies), len(self.index.entries) / 10)

    def test_truncated_delta_is_refused(self):
        blob, _writer = self.write()
        parser = delta.Parser()
        parser.feed(blob[:-3])
        self.assertRaises(delta.InvalidDelta, parser.close)

    def test_other_bytes_are_refused(self):
        self.assertRaises(delta.InvalidDelta, delta.Parser().feed,
                          b'GIF89a.....')
        self.assertRaises(delta.InvalidDelta, delta.Parser().feed,
                          delta.MAGIC + b'X')

    def test_oversized_records_are_refused(self):
        huge_copy = (delta.MAGIC + delta.COPY + (0).to_bytes(8, 'big') +
                     (delta.MAX_COPY + 1).to_bytes(4, 'big') + bytes(32))
        self.assertRaises(delta.InvalidDelta, delta.Parser().feed, huge_copy)
        huge_data = (delta.MAGIC + delta.DATA +
                     (delta.MAX_DATA + 1).to_bytes(4, 'big'))
        self.assertRaises(delta.InvalidDelta, delta.Parser().feed, huge_data)

    def test_bytes_after_the_end_are_refused(self):
        blob, _writer = self.write()
        self.assertRaises(delta.InvalidDelta, _parse, blob + delta.DATA)
