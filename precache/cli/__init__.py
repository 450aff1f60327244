"""The ``precache`` command line client.

A cliff application talking to precache-service over RPC (the operator
calls of :class:`precache.service.rpcapi.ServiceAPI`): it works from any
host that has the configuration, prints tables or, with ``-f json``, raw
data for scripts.
"""

import warnings

# Installed alongside, eventlet warns as soon as a library merely imports
# it (before any command runs); precache never uses it, and the operator
# of a command can do nothing about it.
warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')

# Selects oslo.service's threading backend before the modules of this
# package import anything that imports oslo_service.service.
from precache import cmd  # noqa: F401,E402
