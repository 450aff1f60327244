"""precache's configuration options, one module per option group.

Options that belong to a plugin are declared by the plugin itself (see
:mod:`precache.common.plugin`) and registered when the plugin is loaded.
"""

from oslo_config import cfg

from precache.conf import agent
from precache.conf import chunk_index
from precache.conf import coordination
from precache.conf import database
from precache.conf import delta
from precache.conf import glance
from precache.conf import metrics
from precache.conf import rpc
from precache.conf import service
from precache.conf import signing
from precache.conf import upgrade_levels

CONF = cfg.CONF

#: The option modules, in the order of the sample configuration.
MODULES = (rpc, database, service, coordination, agent, signing, glance,
           upgrade_levels, metrics, delta, chunk_index)

for _module in MODULES:
    _module.register_opts(CONF)
