"""precache's configuration and RPC in a benchmark's own processes."""

from precache.common import rpc
from precache import conf as precache_conf
from precache.conf import defaults as conf_defaults


def configure(transport_url, host):
    """Load the defaults, name this process ``host``, start RPC.

    :returns: the global ConfigOpts (oslo.messaging needs ``cfg.CONF``).
    """
    conf = precache_conf.CONF
    conf_defaults.set_defaults(conf)
    conf([], project='precache', default_config_files=[])
    conf.set_override('host', host)
    rpc.init(conf, url=transport_url)
    return conf
