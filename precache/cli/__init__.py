"""The ``precache`` command line client.

A cliff application talking to precache-service over RPC (the operator
calls of :class:`precache.service.rpcapi.ServiceAPI`): it works from any
host that has the configuration, prints tables or, with ``-f json``, raw
data for scripts.
"""

# Selects oslo.service's threading backend and silences eventlet's
# deprecation warning before the modules of this package import anything
# that imports oslo_service.service or eventlet.
from precache import cmd  # noqa: F401
