"""Options of the signed casts: the service's key, the agents' keys."""

from oslo_config import cfg

signing_group = cfg.OptGroup(
    'signing', title='Signed cache requests',
    help='precache-service signs every cache request (meta) it sends with '
         'an Ed25519 private key; agents refuse requests not signed by a '
         'key they trust, before any download. Make a key pair with '
         '"precache-manage signing generate-keys --private PATH --public '
         'PATH". To rotate keys: add the new public key to every agent, '
         'then switch the service to the new private key, then remove the '
         'old public key from the agents.')

signing_opts = [
    cfg.BoolOpt('enabled',
                default=True,
                help='Sign (service) and verify (agent) cache requests. '
                     'Turning it off is UNSAFE: anyone who can cast on the '
                     'message bus (every compute host holds its '
                     'credentials) then decides what the agents download '
                     'and land in Nova\'s image cache. With it on, a key '
                     'file that is missing or unreadable stops the daemon '
                     'at start-up.'),
    cfg.StrOpt('private_key_file',
               sample_default='/etc/precache/signing/private.pem',
               help='precache-service only: the PEM Ed25519 private key '
                    'every meta is signed with. Keep it on service hosts '
                    'only (mode 0600, owned by the service\'s user).'),
    cfg.ListOpt('public_key_files',
                default=[],
                sample_default='/etc/precache/signing/public.pem',
                help='precache-agent only: PEM Ed25519 public keys whose '
                     'signatures are trusted. Several during a key '
                     'rotation; a request signed by any other key is '
                     'refused (reported as unknown_key).'),
]


def register_opts(conf):
    conf.register_group(signing_group)
    conf.register_opts(signing_opts, group=signing_group)


def list_opts():
    return {signing_group: signing_opts}
