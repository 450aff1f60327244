"""precache's defaults for options owned by libraries.

:func:`set_defaults` is applied by every console script before the
configuration is parsed; :func:`update_generator_defaults` is
oslo-config-generator's hook (entry point ``oslo.config.opts.defaults``) so
that ``etc/precache.conf.sample`` shows the same defaults.
"""

from oslo_concurrency import lockutils
from oslo_config import cfg
from oslo_db import options as db_options
import oslo_messaging as messaging
from oslo_messaging import opts as messaging_opts

from precache.conf import database

RABBIT_GROUP = 'oslo_messaging_rabbit'

#: ``[oslo_concurrency] lock_path``: oslo.messaging's queue manager keeps
#: its counters under a lock there.
LOCK_PATH = '$state_path/lock'

#: ``[DEFAULT] executor_thread_pool_size``: the threads an RPC server
#: dispatches messages to. futurist's pool starts a new thread for each
#: message until it is full and keeps them all; at oslo.messaging's 64 every
#: daemon's worker grew by some 60 MiB of RSS (the soak, 2-core machine)
#: for threads that sat idle: an agent's endpoint returns at once, the
#: service's handle a report or heartbeat in milliseconds.
EXECUTOR_THREAD_POOL_SIZE = 8

#: Overrides of ``[oslo_messaging_rabbit]`` defaults.
RABBIT_DEFAULTS = {
    # Stable fanout queue names: an agent restarted within
    # rabbit_transient_queues_ttl receives the casts it missed.
    'use_queue_manager': True,
}


def set_defaults(conf=None):
    """Set precache's defaults on ``conf`` (the global CONF by default)."""
    conf = cfg.CONF if conf is None else conf
    messaging.set_transport_defaults('precache')
    lockutils.set_defaults(LOCK_PATH)
    db_options.set_defaults(conf, connection=database.DEFAULT_CONNECTION)
    rabbit_opts, pool_opts = _messaging_opts()
    _register(conf, rabbit_opts, RABBIT_GROUP)
    _register(conf, pool_opts, None)
    for name, value in RABBIT_DEFAULTS.items():
        conf.set_default(name, value, group=RABBIT_GROUP)
    messaging_opts.set_defaults(
        conf, executor_thread_pool_size=EXECUTOR_THREAD_POOL_SIZE)


def _messaging_opts():
    """oslo.messaging's rabbit options and its executor pool's option.

    The library's own objects where it has them: oslo.messaging registers
    those objects again when it builds a transport or a server, and an
    equal object (or the same one) is no duplicate. Copies (what
    ``list_opts`` gives) stop being equal once
    :func:`update_generator_defaults` changed the originals' defaults in
    the same process.
    """
    try:
        from oslo_messaging._drivers import impl_rabbit
        from oslo_messaging import server
        return impl_rabbit.rabbit_opts, server._pool_opts
    except (ImportError, AttributeError):  # they moved: copies will do
        rabbit, pool = [], []
        for group, opts in messaging_opts.list_opts():
            if group == RABBIT_GROUP:
                rabbit.extend(opts)
            elif group in (None, 'DEFAULT'):
                pool.extend(o for o in opts
                            if o.name == 'executor_thread_pool_size')
        return rabbit, pool


def _register(conf, opts, group):
    # Registering an equal or the same object again is allowed; a second
    # call finds them with precache's defaults already set.
    for opt in opts:
        try:
            conf.register_opt(opt, group=group)
        except cfg.DuplicateOptError:
            pass


def update_generator_defaults():
    """Show precache's defaults in the generated sample config."""
    messaging.set_transport_defaults('precache')
    lockutils.set_defaults(LOCK_PATH)
    cfg.set_defaults(db_options.database_opts,
                     connection=database.DEFAULT_CONNECTION)
    rabbit_opts, pool_opts = _messaging_opts()
    cfg.set_defaults(rabbit_opts, **RABBIT_DEFAULTS)
    cfg.set_defaults(pool_opts,
                     executor_thread_pool_size=EXECUTOR_THREAD_POOL_SIZE)
