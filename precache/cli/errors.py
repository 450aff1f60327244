"""Errors the ``precache`` command reports in one line, with an exit code.

Exit codes: 1 for a failure of the work asked (the service refused or
failed), 2 when the command could not be carried out at all (unknown
image, unreachable service, bad configuration).
"""

from precache.common import exception


class CLIError(exception.PrecacheException):
    """Base class: ``exit_code`` is the status the command ends with."""

    exit_code = 1


class ConfigError(CLIError):
    msg_fmt = 'Cannot read the configuration: %(reason)s'
    exit_code = 2


class ServiceUnreachable(CLIError):
    msg_fmt = ('No answer from precache-service within %(timeout)s s '
               '(topic %(topic)r, transport %(transport)s). Check that the '
               'service runs and that transport_url and [rpc] '
               'service_topic match its configuration.')
    exit_code = 2


class UnknownImage(CLIError):
    msg_fmt = ('Image %(image_id)s is not known to precache-service: no '
               'lister listed it and nobody requested it. Run "precache '
               'images" for the known ones, or "precache cache %(image_id)s" '
               'to ask for it.')
    exit_code = 2


class VersionPinned(CLIError):
    msg_fmt = 'Cannot %(action)s: %(reason)s'
    exit_code = 2


class ServiceError(CLIError):
    msg_fmt = 'precache-service failed to %(action)s: %(exc_type)s: %(value)s'
