"""Every option precache knows, for oslo-config-generator.

The ``oslo.config.opts`` entry point ``precache`` names :func:`list_opts`.
Options of installed plugins are included under their own groups.
"""

import collections

from precache.common import plugin
from precache import conf


def list_opts():
    """Return ``[(group, [opts])]`` for the sample config file."""
    by_group = collections.OrderedDict()
    for module in conf.MODULES:
        for group, opts in module.list_opts().items():
            by_group.setdefault(group, []).extend(opts)
    for group, opts in plugin.list_plugin_opts():
        by_group.setdefault(group, []).extend(opts)
    return list(by_group.items())
