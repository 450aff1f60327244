"""precache-manage: operator tasks of precache-service.

``precache-manage db sync`` upgrades the schema to this version's;
``precache-manage db version`` prints the current revision;
``precache-manage signing generate-keys --private PATH --public PATH``
writes a new Ed25519 key pair for signed casts (see
:mod:`precache.objects.signing`).
"""

import sys

from oslo_config import cfg

from precache import cmd
from precache.db import api as db_api
from precache.db import migration
from precache.objects import signing


def _sync(conf):
    db = db_api.StateDB.from_conf(conf)
    db.sync()
    print('Database schema at revision %s' %
          migration.current_revision(db.engine))


def _version(conf):
    db = db_api.StateDB.from_conf(conf)
    print(migration.current_revision(db.engine) or 'empty')


def _generate_keys(conf):
    private, public = conf.category.private, conf.category.public
    try:
        kid = signing.generate_key_pair(private, public)
    except OSError as exc:
        print('error: %s' % exc, file=sys.stderr)
        return 1
    print('Key %s: private key %s (mode 0600: keep it on service hosts, '
          '[signing] private_key_file), public key %s (for the agents\' '
          '[signing] public_key_files)' % (kid, private, public))
    return 0


def _add_commands(subparsers):
    db_parser = subparsers.add_parser('db', help='database schema')
    db_commands = db_parser.add_subparsers(dest='action')
    db_commands.required = True
    db_commands.add_parser('sync', help='upgrade the schema to the newest '
                                        'revision').set_defaults(func=_sync)
    db_commands.add_parser('version', help='print the schema revision'
                           ).set_defaults(func=_version)

    signing_parser = subparsers.add_parser('signing',
                                           help='keys of signed casts')
    signing_commands = signing_parser.add_subparsers(dest='action')
    signing_commands.required = True
    generate = signing_commands.add_parser(
        'generate-keys', help='write a new Ed25519 key pair (PEM); existing '
                              'files are not overwritten')
    generate.add_argument('--private', required=True,
                          help='where to write the private key')
    generate.add_argument('--public', required=True,
                          help='where to write the public key')
    generate.set_defaults(func=_generate_keys)


command_opt = cfg.SubCommandOpt('category', title='Commands',
                                handler=_add_commands)


def main(argv=None):
    from precache import conf as precache_conf
    precache_conf.CONF.register_cli_opt(command_opt)
    conf = cmd.prepare(sys.argv[1:] if argv is None else argv,
                       'Operator tasks of precache-service.')
    return conf.category.func(conf) or 0


if __name__ == '__main__':
    sys.exit(main())
