"""precache-manage: operator tasks on precache-service's database.

``precache-manage db sync`` upgrades the schema to this version's;
``precache-manage db version`` prints the current revision.
"""

import sys

from oslo_config import cfg

from precache import cmd
from precache.db import api as db_api
from precache.db import migration


def _sync(db):
    db.sync()
    print('Database schema at revision %s' %
          migration.current_revision(db.engine))


def _version(db):
    print(migration.current_revision(db.engine) or 'empty')


def _add_db_commands(subparsers):
    db_parser = subparsers.add_parser('db', help='database schema')
    db_commands = db_parser.add_subparsers(dest='action')
    db_commands.required = True
    db_commands.add_parser('sync', help='upgrade the schema to the newest '
                                        'revision').set_defaults(func=_sync)
    db_commands.add_parser('version', help='print the schema revision'
                           ).set_defaults(func=_version)


command_opt = cfg.SubCommandOpt('category', title='Commands',
                                handler=_add_db_commands)


def main(argv=None):
    from precache import conf as precache_conf
    precache_conf.CONF.register_cli_opt(command_opt)
    conf = cmd.prepare(sys.argv[1:] if argv is None else argv,
                       'Operator tasks on precache-service\'s database.')
    db = db_api.StateDB.from_conf(conf)
    conf.category.func(db)
    return 0


if __name__ == '__main__':
    sys.exit(main())
