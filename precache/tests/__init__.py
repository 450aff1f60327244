"""precache's tests. The threading backend of oslo.service is selected
here, before anything imports ``oslo_service.service``.

A test process also leads a process group of its own when it must (the
functional tests run RPC servers in-process; see
:mod:`precache.common.process`).
"""

from oslo_service import backend

from precache.common import process

try:
    backend.init_backend(backend.BackendType.THREADING)
except backend.exceptions.BackendAlreadySelected:
    pass

process.ensure_own_process_group()
