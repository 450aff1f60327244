"""Signed metas: signing, verification, keys, rotation, ordering."""

import base64
import json
import os
import subprocess
import sys

from precache.common import exception
from precache.objects import image
from precache.objects import meta as meta_mod
from precache.objects import signing
from precache.tests import base
from precache.tests.fixtures import signing as signing_fixture
from precache.tests.unit.objects import test_meta

OTHER_EPOCH = 'fedcba9876543210' * 2


class SigningTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.keys = self.signing_keys
        self.other = self.useFixture(signing_fixture.SigningKeysFixture(
            os.path.join(self.tempdir, 'other'), name='other'))

    def meta(self, **kw):
        return test_meta.build(
            test_meta.make_image(name='D\xe9bian'), [test_meta.HTTP_SOURCE],
            targets={'hosts': ['cmp-*'], 'labels': []}, pin_until=12.5,
            **kw)

    def assertRefused(self, code, verifier, meta):
        exc = self.assertRaises(exception.UntrustedMeta, verifier.verify,
                                meta)
        self.assertEqual(code, exc.code)
        return exc


class SignVerifyTest(SigningTestCase):

    def test_signed_meta_verifies_and_validates(self):
        signed = self.keys.sign(self.meta())
        self.assertEqual({'key_id', 'algorithm', 'value'},
                         set(signed['signature']))
        self.assertEqual(self.keys.key_id, signed['signature']['key_id'])
        self.assertRegex(self.keys.key_id, '^[0-9a-f]{16}$')
        self.assertEqual(64, len(base64.b64decode(
            signed['signature']['value'])))
        self.assertIs(signed, self.keys.verifier.verify(signed))
        self.assertIs(signed, meta_mod.validate(signed))

    def test_sign_returns_a_copy(self):
        unsigned = self.meta()
        signed = self.keys.sign(unsigned)
        self.assertNotIn('signature', unsigned)
        self.assertEqual(unsigned, {k: v for k, v in signed.items()
                                    if k != 'signature'})

    def test_resigning_replaces_the_signature(self):
        signed = self.other.sign(self.keys.sign(self.meta()))
        self.assertEqual(self.other.key_id, signed['signature']['key_id'])
        self.other.verifier.verify(signed)

    def test_signed_bytes_are_canonical_json(self):
        meta = {'b': 1, 'a': {'y': [1, 2.5], 'x': 'd\xe9j\xe0'},
                'signature': {'ignored': True}}
        self.assertEqual(
            b'precache-meta-v1\n'
            b'{"a":{"x":"d\\u00e9j\\u00e0","y":[1,2.5]},"b":1}',
            signing.signed_bytes(meta))

    def test_survives_the_wire(self):
        # Any JSON encoding (order, spaces) decodes to the same meta.
        signed = self.keys.sign(self.meta())
        wire = json.dumps(signed, indent=3, ensure_ascii=False)
        self.keys.verifier.verify(json.loads(wire))

    def test_every_field_is_covered(self):
        changes = [
            lambda m: m['image'].update(os_hash_value='cd' * 64),
            lambda m: m['image'].update(id='22222222-2222-3333-4444-5555'),
            lambda m: m['sources'][0].update(url='http://evil/x.zst'),
            lambda m: m['sources'].append({'method': 'glance'}),
            lambda m: m.update(generation=m['generation'] + 1),
            lambda m: m.update(epoch=OTHER_EPOCH),
            lambda m: m.update(targets=None),
            lambda m: m.update(pin_until=10 ** 10),
            lambda m: m.update(version=m['version'] + '1'),
            lambda m: m.update(extra='added'),
            lambda m: m.pop('pin_until'),
        ]
        for change in changes:
            tampered = json.loads(json.dumps(self.keys.sign(self.meta())))
            change(tampered)
            exc = self.assertRefused('bad_signature', self.keys.verifier,
                                     tampered)
            self.assertIn('changed after it was signed', str(exc))

    def test_missing_signature(self):
        self.assertRefused('unsigned', self.keys.verifier, self.meta())
        self.assertRefused('unsigned', self.keys.verifier,
                           dict(self.meta(), signature=None))
        self.assertRefused('unsigned', self.keys.verifier, ['not', 'a'])

    def test_unknown_key(self):
        exc = self.assertRefused('unknown_key', self.keys.verifier,
                                 self.other.sign(self.meta()))
        self.assertIn(self.other.key_id, str(exc))
        self.assertIn(self.keys.key_id, str(exc))

    def test_wrong_key_under_a_trusted_key_id(self):
        signed = self.other.sign(self.meta())
        signed['signature']['key_id'] = self.keys.key_id
        self.assertRefused('bad_signature', self.keys.verifier, signed)

    def test_malformed_signatures(self):
        signed = self.keys.sign(self.meta())
        for signature in ('abc', {'key_id': 5},
                          dict(signed['signature'], value='not base64!'),
                          dict(signed['signature'], value=''),
                          dict(signed['signature'], algorithm='rsa')):
            code = ('unknown_key' if isinstance(signature, dict) and
                    signature.get('key_id') != self.keys.key_id
                    else 'bad_signature')
            self.assertRefused(code, self.keys.verifier,
                               dict(signed, signature=signature))

    def test_hostile_ids_are_quoted_in_messages(self):
        meta = self.meta()
        meta['image']['id'] = 'x\x1b[2J\n' + 'y' * 500
        exc = self.assertRefused('unsigned', self.keys.verifier, meta)
        self.assertNotIn('\x1b', str(exc))
        self.assertNotIn('\n', str(exc))
        self.assertLess(len(str(exc)), 250)

    def test_null_signer_and_verifier(self):
        meta = self.meta()
        self.assertIs(meta, signing.NullSigner().sign(meta))
        self.assertIs(meta, signing.NullVerifier().verify(meta))


class RotationTest(SigningTestCase):

    def test_agents_trusting_both_keys_accept_either(self):
        both = signing.Verifier([
            signing.load_public_key(self.keys.public_key_file),
            signing.load_public_key(self.other.public_key_file)])
        self.assertEqual({self.keys.key_id, self.other.key_id},
                         set(both.keys))
        # Step 2 of a rotation: the service switched to the new key;
        # metas signed before (by the old) still verify as well.
        both.verify(self.keys.sign(self.meta()))
        both.verify(self.other.sign(self.meta()))
        # Step 3: the old public key removed.
        self.assertRefused('unknown_key', self.other.verifier,
                           self.keys.sign(self.meta()))

    def test_verifier_from_conf_reads_every_key(self):
        self.flags(group='signing', public_key_files=[
            self.keys.public_key_file, self.other.public_key_file])
        verifier = signing.verifier_from_conf(self.conf)
        self.assertEqual({self.keys.key_id, self.other.key_id},
                         set(verifier.keys))


class KeyFilesTest(SigningTestCase):

    def test_signer_from_conf(self):
        signer = signing.signer_from_conf(self.conf)
        self.assertEqual(self.keys.key_id, signer.key_id)

    def assertConfigError(self, option, function):
        exc = self.assertRaises(exception.ConfigurationError, function,
                                self.conf)
        self.assertIn(option, str(exc))
        self.assertIn('generate-keys', str(exc))
        self.assertIn('enabled = false (unsafe', str(exc))
        return exc

    def test_missing_keys_are_start_up_errors(self):
        self.flags(group='signing', private_key_file=None,
                   public_key_files=[])
        self.assertConfigError('[signing] private_key_file',
                               signing.signer_from_conf)
        self.assertConfigError('[signing] public_key_files',
                               signing.verifier_from_conf)
        missing = os.path.join(self.tempdir, 'nowhere.pem')
        self.flags(group='signing', private_key_file=missing,
                   public_key_files=[self.keys.public_key_file, missing])
        exc = self.assertConfigError('[signing] private_key_file',
                                     signing.signer_from_conf)
        self.assertIn(missing, str(exc))
        exc = self.assertConfigError('[signing] public_key_files',
                                     signing.verifier_from_conf)
        self.assertIn(missing, str(exc))

    def test_wrong_kind_of_key_file(self):
        garbage = os.path.join(self.tempdir, 'garbage.pem')
        with open(garbage, 'w') as f:
            f.write('-----BEGIN PRIVATE KEY-----\nnope\n')
        for private, public in ((garbage, garbage),
                                (self.keys.public_key_file,
                                 self.keys.private_key_file)):
            self.flags(group='signing', private_key_file=private,
                       public_key_files=[public])
            self.assertConfigError('[signing] private_key_file',
                                   signing.signer_from_conf)
            self.assertConfigError('[signing] public_key_files',
                                   signing.verifier_from_conf)

    def test_disabled_signing_needs_no_key(self):
        self.flags(group='signing', enabled=False, private_key_file=None,
                   public_key_files=[])
        self.assertIsInstance(signing.signer_from_conf(self.conf),
                              signing.NullSigner)
        self.assertIsInstance(signing.verifier_from_conf(self.conf),
                              signing.NullVerifier)

    def test_generate_key_pair(self):
        private = os.path.join(self.tempdir, 'new-private.pem')
        public = os.path.join(self.tempdir, 'new-public.pem')
        kid = signing.generate_key_pair(private, public)
        self.assertEqual(0o600, os.stat(private).st_mode & 0o777)
        self.assertEqual(kid, signing.key_id(signing.load_public_key(public)))
        signer = signing.Signer(signing.load_private_key(private))
        self.assertEqual(kid, signer.key_id)
        # Existing files are never overwritten.
        with open(private, 'rb') as f:
            before = f.read()
        self.assertRaises(FileExistsError, signing.generate_key_pair,
                          private, os.path.join(self.tempdir, 'x.pem'))
        self.assertFalse(os.path.exists(os.path.join(self.tempdir,
                                                     'x.pem')))
        with open(private, 'rb') as f:
            self.assertEqual(before, f.read())

    def test_precache_manage_generate_keys(self):
        private = os.path.join(self.tempdir, 'cli-private.pem')
        public = os.path.join(self.tempdir, 'cli-public.pem')
        result = subprocess.run(
            [sys.executable, '-m', 'precache.cmd.manage', '--config-file',
             os.devnull, 'signing', 'generate-keys', '--private', private,
             '--public', public], capture_output=True, text=True)
        self.assertEqual(0, result.returncode, result.stderr)
        kid = signing.key_id(signing.load_public_key(public))
        self.assertIn(kid, result.stdout)
        signing.load_private_key(private)


class GenerationOrderTest(base.TestCase):

    def meta(self, generation, epoch=base.EPOCH):
        return {'epoch': epoch, 'generation': generation}

    def test_lower_counter_of_the_same_epoch_is_stale(self):
        self.assertTrue(meta_mod.is_stale(self.meta(4), base.EPOCH, 5))
        self.assertFalse(meta_mod.is_stale(self.meta(5), base.EPOCH, 5))
        self.assertFalse(meta_mod.is_stale(self.meta(6), base.EPOCH, 5))

    def test_another_epoch_is_never_stale(self):
        self.assertFalse(meta_mod.is_stale(self.meta(1, OTHER_EPOCH),
                                           base.EPOCH, 10 ** 18))

    def test_new_generation_grows_past_the_previous(self):
        now = meta_mod.new_generation()
        self.assertGreater(meta_mod.new_generation(), now - 1)
        ahead = now + 10 ** 9
        self.assertEqual(ahead + 1, meta_mod.new_generation(ahead))

    def test_epoch_must_be_32_hex_digits(self):
        built = test_meta.build(test_meta.make_image(),
                                [test_meta.HTTP_SOURCE])
        for epoch in (None, 'E' * 32, 'a' * 31, 'a' * 32 + '\n', 7):
            self.assertRaises(exception.InvalidMeta, meta_mod.validate,
                              dict(built, epoch=epoch))
        del built['epoch']
        self.assertRaises(exception.InvalidMeta, meta_mod.validate, built)


class ImageIdTest(base.TestCase):

    def test_valid_ids(self):
        for value in ('6f1d7e3a-0c55-4d0a-9a57-3a2b2f9c1e01', 'a b~!',
                      'x' * image.MAX_ID_LENGTH):
            self.assertTrue(image.is_valid_id(value), value)
            test_meta.build(test_meta.make_image(id=value),
                            [test_meta.HTTP_SOURCE])

    def test_invalid_ids(self):
        for value in ('', 'a/b', 'a\\b', 'abc\n', 'a\x00', 'a\x1b[31m',
                      'd\xe9j\xe0', 'x' * (image.MAX_ID_LENGTH + 1), 5,
                      None):
            self.assertFalse(image.is_valid_id(value), repr(value))
            if isinstance(value, str):
                self.assertRaises(exception.InvalidMeta, test_meta.build,
                                  test_meta.make_image(id=value),
                                  [test_meta.HTTP_SOURCE])

    def test_quote_id(self):
        uuid = '6f1d7e3a-0c55-4d0a-9a57-3a2b2f9c1e01'
        self.assertEqual(uuid, image.quote_id(uuid))
        self.assertEqual('a\\x1b[2J\\x0a', image.quote_id('a\x1b[2J\n'))
        self.assertEqual('d\\xe9', image.quote_id('d\xe9'))
        self.assertEqual('<int>', image.quote_id(5))
        self.assertEqual('<NoneType>', image.quote_id(None))
        self.assertEqual('<empty>', image.quote_id(''))
        long_id = 'x' * 1000
        self.assertEqual('x' * image.QUOTE_LIMIT + '...',
                         image.quote_id(long_id))
        hostile = '\x00' * 1000
        quoted = image.quote_id(hostile)
        self.assertTrue(quoted.isprintable() and quoted.isascii())
        self.assertLessEqual(len(quoted), 4 * image.QUOTE_LIMIT + 3)
