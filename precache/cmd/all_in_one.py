"""precache-all-in-one: see precache work end to end on one machine.

stdout tells the run (see :mod:`precache.cmd.all_in_one_view`); the
logs of the service and the agents go to ``precache-all-in-one.log`` in
the work directory unless ``--log-file`` or ``--use-stderr`` says
otherwise.
"""

import os
import sys
import tempfile

from oslo_config import cfg

from precache import cmd
from precache.cmd import all_in_one_runner as all_in_one
from precache.cmd import all_in_one_view
from precache.common import exception

#: The log file's name in the work directory.
LOG_FILE = 'precache-all-in-one.log'

cli_opts = [
    cfg.IntOpt('hosts', default=3, min=1,
               help='Number of simulated compute hosts (agents).'),
    cfg.StrOpt('images-dir',
               help='Directory of image files to distribute (file name = '
                    'image id). A sample qcow2 image is made by default.'),
    cfg.StrOpt('work-dir',
               help='Where everything is written; a new temporary '
                    'directory by default.'),
    cfg.StrOpt('compression', default='zstd',
               choices=['zstd', 'gzip', 'none'],
               help='Compression of the served artifact.'),
]


def _log_to_work_dir(conf):
    """Create the work directory; send the logs to a file in it."""
    if not conf.work_dir:
        conf.set_override('work_dir',
                          tempfile.mkdtemp(prefix='precache-aio-'))
    os.makedirs(conf.work_dir, exist_ok=True)
    if not conf.log_file and not conf.use_stderr:
        conf.set_override('log_file', os.path.join(
            os.path.abspath(conf.work_dir), LOG_FILE))


def main(argv=None):
    from precache import conf as precache_conf
    precache_conf.CONF.register_cli_opts(cli_opts)
    conf = cmd.prepare(sys.argv[1:] if argv is None else argv,
                       'Run precache end to end in one process: no broker, '
                       'no Glance, nothing to configure.',
                       before_logging=_log_to_work_dir)
    work_dir = os.path.abspath(conf.work_dir)
    view = all_in_one_view.ProgressView(work_dir, log_file=conf.log_file)
    runner = all_in_one.AllInOne(conf, work_dir, hosts=conf.hosts,
                                 images_dir=conf.images_dir,
                                 compression=conf.compression, view=view)
    try:
        return runner.run()
    except exception.ConfigurationError as exc:
        print('precache-all-in-one: %s' % exc, file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
