"""Every option precache knows, for oslo-config-generator.

The ``oslo.config.opts`` entry point ``precache`` names :func:`list_opts`.
Options of installed plugins are included under their own groups.
"""

import collections

from precache.conf import agent
from precache.conf import glance
from precache.conf import rpc
from precache.conf import service
from precache import plugin

_MODULES = (rpc, service, agent, glance)


def list_opts():
    """Return ``[(group, [opts])]`` for the sample config file."""
    by_group = collections.OrderedDict()
    for module in _MODULES:
        for group, opts in module.list_opts().items():
            by_group.setdefault(group, []).extend(opts)
    for group, opts in plugin.list_plugin_opts():
        by_group.setdefault(group, []).extend(opts)
    return list(by_group.items())
