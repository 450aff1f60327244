"""RPC version pins for rolling upgrades (like Nova's ``[upgrade_levels]``).

Upgrade precache-service first, then the agents. While agents of the
previous release still run, the upgraded service must not send them
calls they do not know: pin ``[upgrade_levels] agent`` on the service to
their version and unset it once every agent is upgraded.
"""

from oslo_config import cfg

upgrade_group = cfg.OptGroup(
    'upgrade_levels', title='RPC version pins',
    help='Caps on the RPC API versions this host sends, so that daemons of '
         'two releases can run side by side during a rolling upgrade '
         '(service first, then agents). Unset, the newest version this '
         'release knows is sent.')

_VERSION = r'^\d+\.\d+$'

upgrade_opts = [
    cfg.StrOpt('service',
               regex=_VERSION,
               help='Highest version of the service RPC API that '
                    'precache-agent and the precache command on this host '
                    'send, e.g. 1.0. Only needed when precache-service '
                    'still runs an older release than this host (agents '
                    'upgraded first): calls the service cannot understand '
                    'are then refused with an error naming this option '
                    '(a pinned 1.0 agent relies on the service\'s casts '
                    'instead of asking for the desired images). Unset it '
                    'once the service is upgraded.'),
    cfg.StrOpt('agent',
               regex=_VERSION,
               help='Highest version of the agent RPC API that '
                    'precache-service sends, e.g. 1.0. Set it on the '
                    'upgraded service to the version of the oldest agent '
                    'release still running; unset it (and restart the '
                    'service) once every agent is upgraded.'),
]


def register_opts(conf):
    conf.register_group(upgrade_group)
    conf.register_opts(upgrade_opts, group=upgrade_group)


def list_opts():
    return {upgrade_group: upgrade_opts}
