"""Console scripts.

oslo.service's threading backend is selected here, before anything imports
``oslo_service.service``: precache never uses eventlet.
"""

import os
import sys
import warnings

# Installed alongside (oslo.service depends on it), eventlet warns as soon
# as a library merely imports it (futurist does, through oslo.messaging),
# before any command runs. precache never uses it and the operator can do
# nothing about it. The warning's class lives in eventlet itself, which
# cannot be imported to name it without triggering it: match its text.
warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')

from oslo_log import log as logging  # noqa: E402
from oslo_service import backend  # noqa: E402

try:
    backend.init_backend(backend.BackendType.THREADING)
except backend.exceptions.BackendAlreadySelected:
    pass

from precache.common import exception  # noqa: E402
from precache.common import malloc_tuning  # noqa: E402
from precache.common import process  # noqa: E402
from precache import conf as precache_conf  # noqa: E402
from precache.conf import defaults as conf_defaults  # noqa: E402
from precache import version  # noqa: E402

LOG = logging.getLogger(__name__)


def prepare(argv, description=None, before_logging=None):
    """Parse the command line and config files; set up logging.

    :param before_logging: a callable given the parsed ConfigOpts before
        logging is set up (to choose where logs go, say).
    :returns: the global ConfigOpts.
    """
    conf = precache_conf.CONF
    logging.register_options(conf)
    conf_defaults.set_defaults()
    conf(argv, project='precache', version=version.version_string(),
         description=description)
    if before_logging is not None:
        before_logging(conf)
    logging.setup(conf, 'precache')
    return conf


def run_service(make_service, argv, description):
    """Build a service and run it under oslo.service until it stops.

    A configuration error (a missing plugin, a refused store) is printed
    and ends the process with status 2 before anything starts.

    The process first leads a process group of its own when it must (see
    :mod:`precache.common.process`), before oslo.messaging reads it.
    """
    from oslo_service import service

    new_group = process.ensure_own_process_group()
    malloc_tuning.tune()
    conf = prepare(argv, description)
    if new_group:
        LOG.info('Leading process group %d of its own: %s', os.getpgrp(),
                 new_group)
    try:
        svc = make_service(conf)
    except exception.ConfigurationError as exc:
        LOG.error('%s', exc)
        print('error: %s' % exc, file=sys.stderr)
        return 2
    launcher = service.launch(conf, svc, restart_method='mutate')
    launcher.wait()
    return 0
