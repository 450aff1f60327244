"""Where precache-service keeps its state: ``[database]`` (oslo.db).

The ``[database]`` options themselves are oslo.db's; precache only sets
their default: an sqlite file under ``state_path``, so a single service
needs no database server. MySQL/MariaDB and PostgreSQL are the production
backends (``connection = mysql+pymysql://...`` or
``postgresql+psycopg2://...``).
"""

from oslo_config import cfg
from oslo_db import options as db_options

default_opts = [
    cfg.StrOpt('state_path',
               default='/var/lib/precache',
               help='Directory where precache-service keeps its state (the '
                    'default sqlite database).'),
]

DEFAULT_CONNECTION = 'sqlite:///$state_path/precache.sqlite'


def register_opts(conf):
    conf.register_opts(default_opts)
    db_options.set_defaults(conf, connection=DEFAULT_CONNECTION)


def list_opts():
    return {'DEFAULT': default_opts}
