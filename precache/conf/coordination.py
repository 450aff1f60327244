"""Options of several precache-service instances with one leader."""

from oslo_config import cfg

coordination_group = cfg.OptGroup(
    'coordination', title='Several service instances, one leader',
    help='Any number of precache-service instances may share the database '
         'and the message bus. Every instance answers agents and the '
         'precache CLI; one of them, the leader elected through a tooz '
         'lock, runs List -> Fetch -> Serve -> Distribute and the '
         'convergence passes, and is the only one that sends cache '
         'requests to agents.')

coordination_opts = [
    cfg.StrOpt('backend_url',
               default='',
               sample_default='redis://127.0.0.1:6379',
               secret=True,
               help='The tooz coordination backend the instances elect '
                    'their leader through, e.g. redis://HOST:6379, '
                    'etcd3+http://HOST:2379 or zookeeper://HOST:2181 (its '
                    'driver must be installed). Empty: this instance is '
                    'alone and always the leader; do NOT run two '
                    'instances on one database that way. Prefer a backend '
                    'whose locks expire (Redis, etcd, ZooKeeper): the '
                    'mysql:// and postgresql:// drivers hold the lock as '
                    'long as the database keeps the dead leader\'s '
                    'connection, which after a network cut can be far '
                    'longer than lease_seconds.'),
    cfg.IntOpt('lease_seconds',
               default=15, min=3,
               help='How long the leadership lock lives without being '
                    'renewed. The leader renews it every third of this '
                    'time and stops sending cache requests as soon as a '
                    'renewal fails or the lease runs out; another instance '
                    'takes over at most lease_seconds plus a third of it '
                    'after the leader died. Keep it well below [service] '
                    'interval and reconcile_interval.'),
    cfg.StrOpt('lock_name',
               default='precache-service-leader',
               help='Name of the leadership lock (and of the tooz group '
                    'the instances join). Clouds that share one '
                    'coordination backend need different names.'),
]


def register_opts(conf):
    conf.register_group(coordination_group)
    conf.register_opts(coordination_opts, group=coordination_group)


def list_opts():
    return {coordination_group: coordination_opts}
