"""precache's tests. The threading backend of oslo.service is selected
here, before anything imports ``oslo_service.service``."""

from oslo_service import backend

try:
    backend.init_backend(backend.BackendType.THREADING)
except backend.exceptions.BackendAlreadySelected:
    pass
