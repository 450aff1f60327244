"""The CLI's connection to precache-service.

:func:`load_config` reads the same configuration files as the daemons;
:class:`ServiceClient` sends the operator calls of
:class:`precache.service.rpcapi.ServiceAPI` and turns messaging failures
into :mod:`precache.cli.errors` an operator can act on.
"""

import threading

from oslo_config import cfg
import oslo_messaging as messaging

from precache.cli import errors
from precache.common import exception
from precache.common import rpc
from precache import conf as precache_conf
from precache.conf import defaults as conf_defaults
from precache.service import rpcapi
from precache import version

#: Connection attempts to the broker before a command gives up.
CONNECT_RETRIES = 2
#: Seconds a call may take to connect, on top of its answer timeout.
CONNECT_GRACE = 10
#: What oslo.messaging appends to the class name of a rebuilt exception.
REMOTE_SUFFIX = '_Remote'
#: Why a command without a configuration stops at once.
NO_CONFIG = ('no --config-file given and no precache.conf in '
             '~/.precache/, ~/, /etc/precache/ or /etc/: give the '
             'daemons\' file with --config-file PATH (it needs at least '
             'transport_url).')


def load_config(config_files=(), config_dirs=()):
    """Parse the configuration files the way the daemons do.

    Without ``config_files`` oslo.config looks for ``precache.conf`` in its
    usual places, ``/etc/precache/precache.conf`` among them.

    The global ConfigOpts is used, as by the daemons: oslo.messaging
    registers some of its options (tracing) there only.

    :returns: :data:`precache.conf.CONF`, parsed.
    :raises: :class:`precache.cli.errors.ConfigError`, also when no file
        is given and none is found: the defaults (``rabbit://`` on
        localhost) would only make the command wait for a broker that is
        not there.
    """
    if not (config_files or config_dirs or
            cfg.find_config_files(project='precache', prog='precache') or
            cfg.find_config_dirs(project='precache', prog='precache')):
        raise errors.ConfigError(reason=NO_CONFIG)
    conf = precache_conf.CONF
    conf_defaults.set_defaults(conf)
    args = []
    for path in config_files or ():
        args += ['--config-file', path]
    for path in config_dirs or ():
        args += ['--config-dir', path]
    try:
        conf(args, project='precache', prog='precache',
             version=version.version_string())
    except cfg.Error as exc:
        raise errors.ConfigError(reason=exc)
    # A command lives for seconds: its reply queue needs no stable name
    # (which would also need [oslo_concurrency] lock_path on this host).
    conf.set_override('use_queue_manager', False,
                      group=conf_defaults.RABBIT_GROUP)
    return conf


def describe_transport(conf):
    """Return the transport URL without credentials, for messages."""
    try:
        url = messaging.TransportURL.parse(conf, conf.transport_url)
    except (messaging.InvalidTransportURL, cfg.Error):
        return 'unknown (check transport_url)'
    hosts = ','.join('%s:%s' % (host.hostname, host.port)
                     if host.port else str(host.hostname)
                     for host in url.hosts)
    return '%s://%s/%s' % (url.transport, hosts, url.virtual_host or '')


class ServiceClient(object):
    """Operator calls to precache-service.

    :param conf: the ConfigOpts from :func:`load_config`; :func:`rpc.init`
        must have run.
    :param timeout: seconds each call waits for an answer (None: the
        ``rpc_response_timeout`` option).
    """

    def __init__(self, conf, timeout=None):
        self.conf = conf
        self.timeout = timeout
        self.api = rpcapi.ServiceAPI(conf, timeout=timeout)
        # oslo.messaging retries a refused broker connection forever by
        # default: a command would hang instead of saying so.
        self.api.client = self.api.client.prepare(retry=CONNECT_RETRIES)
        self.context = rpc.get_context()
        self._stuck = False

    def call(self, method, **kwargs):
        """Call ``method`` of :class:`ServiceAPI` and return its result.

        The service's exceptions of :mod:`precache.common.exception` come
        back as their own class (see
        :data:`precache.common.rpc.ALLOWED_EXMODS`); others as
        ``oslo_messaging.RemoteError``.

        :raises: :class:`~precache.cli.errors.ServiceUnreachable` when no
            answer comes in time, :class:`~precache.cli.errors.UnknownImage`
            for an image the service does not know,
            :class:`~precache.cli.errors.VersionPinned` when
            ``[upgrade_levels] service`` forbids the call,
            :class:`~precache.cli.errors.ServiceError` for any other
            failure on the service's side.
        """
        timeout = self.timeout or self.conf.rpc_response_timeout
        action = method.replace('_', ' ')
        try:
            return self._call_within(timeout + CONNECT_GRACE, method, kwargs)
        except messaging.MessagingTimeout:
            raise errors.ServiceUnreachable(
                timeout=timeout, topic=self.conf.rpc.service_topic,
                transport=describe_transport(self.conf))
        except exception.RPCVersionPinned as exc:
            # Refused here, before anything was sent.
            raise errors.VersionPinned(action=action, reason=exc)
        except messaging.RemoteError as exc:
            # Exceptions of modules not in ALLOWED_EXMODS.
            raise errors.ServiceError(action=action, exc_type=exc.exc_type,
                                      value=exc.value)
        except exception.ImageNotFound as exc:
            if 'image_id' not in kwargs:
                raise self._service_error(action, exc)
            raise errors.UnknownImage(image_id=kwargs['image_id'])
        except exception.PrecacheException as exc:
            raise self._service_error(action, exc)

    @staticmethod
    def _service_error(action, exc):
        """Return the CLI error for a precache exception of the service.

        A rebuilt remote exception's class is a ``<name>_Remote`` subclass
        whose text ends with the service's traceback: the class's own name
        and message are shown instead.
        """
        exc_type = type(exc).__name__
        if exc_type.endswith(REMOTE_SUFFIX):
            exc_type = exc_type[:-len(REMOTE_SUFFIX)]
        return errors.ServiceError(action=action, exc_type=exc_type,
                                   value=getattr(exc, 'message', exc))

    def _call_within(self, deadline, method, kwargs):
        """Run the call in a daemon thread, waiting ``deadline`` seconds.

        oslo.messaging retries the connection of its reply queue forever
        when the broker is down; a command must end instead. The stuck
        thread dies with the process.

        :raises: oslo_messaging.MessagingTimeout when the deadline passes.
        """
        outcome = {}

        def target():
            try:
                outcome['result'] = getattr(self.api, method)(
                    self.context, **kwargs)
            except Exception as exc:
                outcome['error'] = exc

        thread = threading.Thread(target=target, daemon=True,
                                  name='precache-%s' % method)
        thread.start()
        thread.join(deadline)
        if thread.is_alive():
            self._stuck = True
            raise messaging.MessagingTimeout(
                'no connection to the broker within %s s' % deadline)
        if 'error' in outcome:
            raise outcome['error']
        return outcome['result']

    def close(self):
        """Close the transports opened by :func:`connect`.

        Not when a call is stuck on a connection: closing would wait for it.
        """
        if not self._stuck:
            rpc.cleanup()


def connect(options):
    """Return a :class:`ServiceClient` for the App's global ``options``.

    ``options`` carries ``config_file``, ``config_dir`` and
    ``rpc_timeout``; the transports are created here and closed by
    :func:`precache.common.rpc.cleanup`.
    """
    conf = load_config(options.config_file, options.config_dir)
    try:
        rpc.init(conf)
    except (messaging.InvalidTransportURL,
            messaging.DriverLoadFailure) as exc:
        raise errors.ConfigError(reason=exc)
    return ServiceClient(conf, timeout=options.rpc_timeout)
