"""Property tests: what an agent receives cannot make its checks crash.

Whatever a cast carries (any JSON value as ``image_id`` and ``meta``, or
a signed meta changed anywhere), the agent's check path
(:meth:`precache.agent.manager.AgentManager._check`: image id, signature,
schema) and :func:`precache.objects.meta.validate` raise
:class:`~precache.common.exception.InvalidMeta` (or a subclass) and
nothing else; a signed meta changed after signing never verifies; and
nothing is written (the store's directory stays empty, no download is
started).

The runs are derandomized (the same cases every run), keep no example
database and keep Hypothesis's caches in the test's temporary directory,
so they write no file elsewhere; together they try
:data:`TOTAL_EXAMPLES` cases.
"""

import copy
import os
from unittest import mock

import hypothesis
from hypothesis import configuration as hypothesis_configuration
from hypothesis import strategies as st

from precache.agent import manager
from precache.common import exception
from precache.objects import meta as meta_mod
from precache.objects import signing
from precache.tests import base
from precache.tests.unit.agent.stores import test_base as store_helpers
from precache.tests.unit.objects import test_meta

#: Cases per property; TOTAL_EXAMPLES in all.
EXAMPLES = {'arbitrary_validate': 2500, 'arbitrary_check': 2000,
            'mutated_check': 4500, 'mutated_validate': 1000}
TOTAL_EXAMPLES = sum(EXAMPLES.values())


def _settings(name):
    return hypothesis.settings(
        max_examples=EXAMPLES[name], derandomize=True, database=None,
        deadline=None, print_blob=False,
        suppress_health_check=[hypothesis.HealthCheck.too_slow,
                               hypothesis.HealthCheck.data_too_large])


_SCALARS = (st.none() | st.booleans() |
            st.integers(min_value=-2 ** 70, max_value=2 ** 70) |
            st.floats(allow_nan=True, allow_infinity=True) |
            st.text(max_size=20) |
            # Strings of the shapes the schema looks for.
            st.sampled_from(['1.0', '1.2', '2.0', 'http', 'bittorrent',
                             'swift', 'glance', 'zstd', 'ed25519',
                             'http://x/', test_meta.HASH, base.EPOCH,
                             '11111111-2222-3333-4444-555555555555',
                             '0123456789abcdef', 'AAAA', '../x', '']))
_KEYS = st.text(max_size=10) | st.sampled_from(
    ['version', 'epoch', 'generation', 'image', 'sources', 'targets',
     'pin_until', 'signature', 'id', 'size', 'disk_format', 'method',
     'url', 'compression', 'checksum', 'os_hash_algo', 'os_hash_value',
     'key_id', 'algorithm', 'value', 'hosts', 'labels', 'peers'])
#: Any value JSON (hence oslo.messaging) can carry.
JSON = st.recursive(
    _SCALARS,
    lambda children: (st.lists(children, max_size=5) |
                      st.dictionaries(_KEYS, children, max_size=6)),
    max_leaves=25)


def _paths(value, prefix=()):
    """Every path into ``value``, the root first."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


def _get(value, path):
    for step in path:
        value = value[step]
    return value


def _tweak(data, value):
    """Return ``value`` changed a little, keeping its type if it can."""
    if isinstance(value, bool):
        return data.draw(st.sampled_from([not value, int(value), None]))
    if isinstance(value, int):
        return data.draw(st.sampled_from(
            [value + 1, value - 1, -value - 1, float(value), str(value),
             2 ** 64, -1]))
    if isinstance(value, float):
        return data.draw(st.sampled_from(
            [value + 1, -value - 1.5, float('nan'), float('inf'),
             int(value) if value == value and abs(value) < 1e18 else 0]))
    if isinstance(value, str):
        position = data.draw(st.integers(0, len(value)))
        char = data.draw(st.characters())
        how = data.draw(st.sampled_from(['insert', 'replace', 'cut',
                                         'case']))
        if how == 'insert' or not value:
            return value[:position] + char + value[position:]
        position = min(position, len(value) - 1)
        if how == 'replace':
            return value[:position] + char + value[position + 1:]
        if how == 'cut':
            return value[:position] + value[position + 1:]
        return value.swapcase() if value.swapcase() != value else value + ' '
    return data.draw(JSON)


def mutate(data, original):
    """Return a deep copy of ``original`` changed at one drawn place."""
    meta = copy.deepcopy(original)
    path = data.draw(st.sampled_from(list(_paths(meta))))
    operation = data.draw(st.sampled_from(
        ['replace', 'tweak', 'delete', 'add', 'wrap']))
    if not path:
        return data.draw(JSON) if operation == 'replace' else [meta]
    parent, last = _get(meta, path[:-1]), path[-1]
    if operation == 'replace':
        parent[last] = data.draw(JSON)
    elif operation == 'tweak':
        parent[last] = _tweak(data, parent[last])
    elif operation == 'delete':
        del parent[last]
    elif operation == 'add' and isinstance(parent, dict):
        parent[data.draw(_KEYS)] = data.draw(JSON)
    elif operation == 'add':
        parent.insert(last, data.draw(JSON))
    else:
        parent[last] = [parent[last]]
    return meta


def _same(a, b):
    """Whether two JSON values are the same on the wire."""
    try:
        return signing.canonical(a) == signing.canonical(b)
    except ValueError:  # NaN or infinity: not what was signed.
        return False


class MetaFuzzTest(base.TestCase):

    def setUp(self):
        super().setUp()
        # Hypothesis caches what it learns (unicode tables, constants) in
        # ./.hypothesis unless told otherwise.
        hypothesis_configuration.set_hypothesis_home_dir(
            os.path.join(self.tempdir, 'hypothesis'))
        self.addCleanup(hypothesis_configuration.set_hypothesis_home_dir,
                        None)
        self.store_dir = os.path.join(self.tempdir, 'images')
        store = store_helpers.directory_store(self, path=self.store_dir)
        os.makedirs(self.store_dir, exist_ok=True)
        self.downloader = mock.Mock(spec=['download', 'close'])
        self.agent = manager.AgentManager(
            self.conf, mock.Mock(), store=store,
            downloader=self.downloader, host='cmp-1',
            verifier=self.signing_keys.verifier)
        self.unsigned = test_meta.build(
            test_meta.make_image(name='D\xe9bian'),
            [test_meta.HTTP_SOURCE, test_meta.BITTORRENT_SOURCE],
            targets={'hosts': ['cmp-*'], 'labels': ['az1']},
            pin_until=12.5, generation=1)
        self.signed = self.signing_keys.sign(self.unsigned)
        self.image_id = self.signed['image']['id']
        self.agent._check(self.image_id, self.signed)  # The seed is good.
        self.addCleanup(self.assertNothingWritten)
        #: Cases run (past ``assume``), checked against EXAMPLES.
        self.cases = 0

    def assertNothingWritten(self):
        self.assertEqual([], os.listdir(self.store_dir))
        self.assertEqual([], self.downloader.mock_calls)

    def run_cases(self, name, run):
        run()
        self.assertGreaterEqual(self.cases, EXAMPLES[name])

    def check(self, image_id, meta):
        """Run the agent's check; only InvalidMeta may come out."""
        self.cases += 1
        try:
            self.agent._check(image_id, meta)
        except exception.InvalidMeta:
            return False
        return True

    def test_total_examples(self):
        self.assertGreaterEqual(TOTAL_EXAMPLES, 10000)

    def test_arbitrary_values_through_validate(self):
        @_settings('arbitrary_validate')
        @hypothesis.given(JSON)
        def run(value):
            self.cases += 1
            try:
                meta_mod.validate(value)
            except exception.InvalidMeta:
                pass

        self.run_cases('arbitrary_validate', run)

    def test_arbitrary_casts_through_the_check(self):
        @_settings('arbitrary_check')
        @hypothesis.given(JSON | st.just(self.image_id), JSON)
        def run(image_id, meta):
            self.assertFalse(self.check(image_id, meta))

        self.run_cases('arbitrary_check', run)

    def test_mutated_signed_metas_never_verify(self):
        @_settings('mutated_check')
        @hypothesis.given(st.data())
        def run(data):
            meta = mutate(data, self.signed)
            hypothesis.assume(not _same(meta, self.signed))
            self.assertFalse(self.check(self.image_id, meta))
            if isinstance(meta, dict):
                self.assertRaises(exception.UntrustedMeta,
                                  self.signing_keys.verifier.verify, meta)

        self.run_cases('mutated_check', run)

    def test_mutated_metas_through_validate(self):
        @_settings('mutated_validate')
        @hypothesis.given(st.data())
        def run(data):
            self.cases += 1
            try:
                meta_mod.validate(mutate(data, self.unsigned))
            except exception.InvalidMeta:
                pass

        self.run_cases('mutated_validate', run)

    def test_signature_in_non_canonical_base64_does_not_verify(self):
        # Found while fuzzing: the last character before '==' carries 4
        # unused bits that base64 decoding ignores.
        alphabet = ('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
                    '0123456789+/')
        value = self.signed['signature']['value']
        self.assertTrue(value.endswith('=='))
        other = alphabet[alphabet.index(value[-3]) ^ 1]
        meta = copy.deepcopy(self.signed)
        meta['signature']['value'] = value[:-3] + other + '=='
        self.assertRaises(exception.BadSignature,
                          self.signing_keys.verifier.verify, meta)

    def test_verify_names_no_image_of_a_malformed_meta(self):
        # Found while fuzzing: 'image' that is not an object.
        for image in ([], 'x', 3):
            meta = dict(self.signed, image=image)
            self.assertRaises(exception.BadSignature,
                              self.signing_keys.verifier.verify, meta)

    def test_nothing_rides_along_in_the_signature(self):
        # Found while fuzzing: the signature object is not signed.
        meta = copy.deepcopy(self.signed)
        meta['signature']['note'] = 'added after signing'
        self.assertRaises(exception.BadSignature,
                          self.signing_keys.verifier.verify, meta)
