"""Options of the control plane: RPC topics and the host name."""

import socket

from oslo_config import cfg

default_opts = [
    cfg.StrOpt('host',
               default=socket.gethostname(),
               sample_default='<current_hostname>',
               help='Name of this host as precache knows it. On a compute '
                    'host it must be unique: the agent listens for casts '
                    'addressed to this name and reports under it. Use the '
                    'same name as nova-compute\'s [DEFAULT] host.'),
]

rpc_group = cfg.OptGroup('rpc', title='RPC topics')

rpc_opts = [
    cfg.StrOpt('agent_topic',
               default='precache-agent',
               help='Topic every precache-agent listens on. The service '
                    'fans cache requests out on it.'),
    cfg.StrOpt('service_topic',
               default='precache-service',
               help='Topic the precache-service listens on for agent '
                    'reports and heartbeats.'),
]


def register_opts(conf):
    conf.register_opts(default_opts)
    conf.register_group(rpc_group)
    conf.register_opts(rpc_opts, group=rpc_group)


def list_opts():
    return {'DEFAULT': default_opts, rpc_group: rpc_opts}
