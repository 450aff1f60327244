"""Signed metas: why an agent may trust a ``cache`` cast.

The bus is shared: anyone holding its credentials (every compute host)
can cast. precache-service therefore signs every meta it sends -- each
``cache`` cast, fanout or targeted, and each entry of its answer to an
agent's ``desired`` call -- with an Ed25519 private key only service
hosts hold, and agents verify it with public keys before any network or
disk work (:class:`Verifier`).

What is signed
--------------

The signed message is::

    b'precache-meta-v1\\n' + canonical(meta without its "signature" key)

``canonical(x)`` is ``json.dumps(x, sort_keys=True, separators=(',', ':'),
ensure_ascii=True, allow_nan=False).encode('ascii')``: keys sorted, no
whitespace, non-ASCII characters escaped as ``\\uXXXX``. Every key of the
meta but ``signature`` is covered, keys a newer minor version adds
included. The prefix keeps the signature from meaning anything for other
data the key might sign.

The signature travels in the meta (meta version 1.2)::

    "signature": {"key_id": "<16 hex digits>", "algorithm": "ed25519",
                  "value": "<base64 of the 64-byte signature>"}

``key_id`` (:func:`key_id`) is the first 16 hex digits of the sha256 of
the raw 32-byte public key; it picks the public key to verify with, so an
agent may trust several keys at once.

Keys and rotation
-----------------

``precache-manage signing generate-keys --private PATH --public PATH``
writes a key pair (PEM: PKCS#8 private key, mode 0600;
SubjectPublicKeyInfo public key). The service reads ``[signing]
private_key_file``, agents read ``[signing] public_key_files``. To rotate:

1. add the new public key to every agent's ``public_key_files`` (and
   restart the agents);
2. point the service's ``private_key_file`` at the new private key (and
   restart it): metas are signed when sent, not when stored, so
   everything it sends from then on carries the new signature;
3. remove the old public key from the agents.
"""

import base64
import hashlib
import json
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives import serialization
from oslo_log import log as logging

from precache.common import exception
from precache.objects import image as image_mod

LOG = logging.getLogger(__name__)

#: Prefixed to the canonical JSON of the meta before signing.
CONTEXT = b'precache-meta-v1\n'
ALGORITHM = 'ed25519'
SIGNATURE_KEY = 'signature'
PRIVATE_OPTION = '[signing] private_key_file'
PUBLIC_OPTION = '[signing] public_key_files'
_SIGNATURE_FIELDS = frozenset(['key_id', 'algorithm', 'value'])


def canonical(data):
    """Return the canonical JSON bytes of ``data`` (see the module doc)."""
    return json.dumps(data, sort_keys=True, separators=(',', ':'),
                      ensure_ascii=True, allow_nan=False).encode('ascii')


def signed_bytes(meta):
    """Return the bytes a meta's signature is computed over."""
    return CONTEXT + canonical({k: v for k, v in meta.items()
                                if k != SIGNATURE_KEY})


def key_id(public_key):
    """First 16 hex digits of the sha256 of the raw public key bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw,
                                  serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Signer(object):
    """Signs metas with one Ed25519 private key.

    :param private_key: an
        :class:`~cryptography.hazmat.primitives.asymmetric.ed25519.Ed25519PrivateKey`.
    """

    def __init__(self, private_key):
        self.private_key = private_key
        self.key_id = key_id(private_key.public_key())

    def sign(self, meta):
        """Return a copy of ``meta`` carrying its signature.

        A signature ``meta`` already carries is replaced.
        """
        meta = {k: v for k, v in meta.items() if k != SIGNATURE_KEY}
        value = self.private_key.sign(signed_bytes(meta))
        meta[SIGNATURE_KEY] = {'key_id': self.key_id,
                               'algorithm': ALGORITHM,
                               'value': base64.b64encode(value).decode()}
        return meta


class NullSigner(object):
    """What the service uses with ``[signing] enabled = false``: no-op."""

    key_id = None

    def sign(self, meta):
        return meta


class Verifier(object):
    """Checks metas against a set of trusted Ed25519 public keys.

    :param public_keys: the
        :class:`~cryptography.hazmat.primitives.asymmetric.ed25519.Ed25519PublicKey`
        objects to trust (several during a key rotation).
    """

    def __init__(self, public_keys):
        self.keys = {key_id(key): key for key in public_keys}

    def verify(self, meta, image_id=None):
        """Return ``meta`` when a trusted key signed it as it is.

        :param image_id: the id the request names, for error messages
            (the meta's own by default).
        :raises Unsigned: ``meta`` carries no signature.
        :raises UnknownKey: its key is not one of the trusted keys.
        :raises BadSignature: the signature is malformed or does not
            match the content (changed after signing, or signed by
            another key claiming a trusted key's id).
        """
        if image_id is None and isinstance(meta, dict):
            image = meta.get('image')
            image_id = image.get('id') if isinstance(image, dict) else None
        quoted = image_mod.quote_id(image_id)
        signature = meta.get(SIGNATURE_KEY) if isinstance(meta,
                                                          dict) else None
        if signature is None:
            raise exception.Unsigned(image_id=quoted)
        if not isinstance(signature, dict):
            raise exception.BadSignature(image_id=quoted, key_id='?',
                                         reason='malformed signature')
        kid = signature.get('key_id')
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise exception.UnknownKey(
                image_id=quoted, key_id=image_mod.quote_id(kid, 16),
                known=', '.join(sorted(self.keys)) or 'none')
        if set(signature) != _SIGNATURE_FIELDS:
            # The signature object is the one part of a meta that is not
            # signed: nothing may ride along in it.
            raise exception.BadSignature(
                image_id=quoted, key_id=kid,
                reason='the signature has fields other than %s'
                % ', '.join(sorted(_SIGNATURE_FIELDS)))
        if signature.get('algorithm') != ALGORITHM:
            raise exception.BadSignature(
                image_id=quoted, key_id=kid,
                reason='algorithm is not %s' % ALGORITHM)
        encoded = signature.get('value') or ''
        try:
            value = base64.b64decode(encoded, validate=True)
            # Only one text per signature: base64 ignores the unused bits
            # of the last character, which would let a signed meta be
            # changed and still verify.
            if base64.b64encode(value).decode('ascii') != encoded:
                raise ValueError('the signature is not canonical base64')
            key.verify(value, signed_bytes(meta))
        except InvalidSignature:
            raise exception.BadSignature(
                image_id=quoted, key_id=kid,
                reason='the meta was changed after it was signed')
        except (TypeError, ValueError) as exc:
            raise exception.BadSignature(image_id=quoted, key_id=kid,
                                         reason=str(exc)[:200])
        return meta


class NullVerifier(object):
    """What agents use with ``[signing] enabled = false``: trusts all."""

    keys = {}

    def verify(self, meta, image_id=None):
        return meta


def _key_error(option, path, reason):
    return exception.ConfigurationError(
        reason='%s: cannot use %s: %s. Make a key pair with '
               '"precache-manage signing generate-keys", or set [signing] '
               'enabled = false (unsafe: anyone who can cast on the bus '
               'then decides what lands on compute hosts)'
               % (option, path or '(not set)', reason))


def load_private_key(path, option=PRIVATE_OPTION):
    """Read a PEM Ed25519 private key.

    :raises ConfigurationError: naming ``option`` when the file is
        missing, unreadable or not an Ed25519 private key.
    """
    if not path:
        raise _key_error(option, path, 'no file given')
    try:
        with open(path, 'rb') as f:
            key = serialization.load_pem_private_key(f.read(), None)
    except (OSError, ValueError, TypeError) as exc:
        raise _key_error(option, path, exc)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise _key_error(option, path, 'not an Ed25519 private key')
    return key


def load_public_key(path, option=PUBLIC_OPTION):
    """Read a PEM Ed25519 public key (see :func:`load_private_key`)."""
    try:
        with open(path, 'rb') as f:
            key = serialization.load_pem_public_key(f.read())
    except (OSError, ValueError, TypeError) as exc:
        raise _key_error(option, path, exc)
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise _key_error(option, path, 'not an Ed25519 public key')
    return key


def signer_from_conf(conf):
    """The service's :class:`Signer` from ``[signing]``.

    :returns: a :class:`NullSigner` when signing is turned off.
    :raises ConfigurationError: the private key cannot be used.
    """
    if not conf.signing.enabled:
        LOG.warning('[signing] enabled = false: metas are sent unsigned; '
                    'agents that verify signatures will refuse them')
        return NullSigner()
    signer = Signer(load_private_key(conf.signing.private_key_file))
    LOG.info('Signing metas with key %s', signer.key_id)
    return signer


def verifier_from_conf(conf):
    """The agent's :class:`Verifier` from ``[signing]``.

    :returns: a :class:`NullVerifier` when signing is turned off.
    :raises ConfigurationError: no public key, or one cannot be used.
    """
    if not conf.signing.enabled:
        LOG.warning('[signing] enabled = false: cache requests are NOT '
                    'verified; anyone who can cast on the bus decides what '
                    'this host downloads')
        return NullVerifier()
    paths = list(conf.signing.public_key_files)
    if not paths:
        raise _key_error(PUBLIC_OPTION, None, 'no file given')
    verifier = Verifier([load_public_key(path) for path in paths])
    LOG.info('Trusting metas signed with key(s) %s',
             ', '.join(sorted(verifier.keys)))
    return verifier


def generate_key_pair(private_path, public_path):
    """Write a new Ed25519 key pair as PEM files.

    The private key file is created with mode 0600; neither file may
    exist already.

    :returns: the key id of the new pair.
    :raises FileExistsError: a file exists.
    """
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise FileExistsError('%s exists already: not overwritten'
                                  % path)
    private_key = ed25519.Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    for path, data, mode in ((private_path, private_pem, 0o600),
                             (public_path, public_pem, 0o644)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
    return key_id(private_key.public_key())
