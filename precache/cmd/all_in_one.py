"""precache-all-in-one: see precache work end to end on one machine."""

import sys
import tempfile

from oslo_config import cfg

from precache import cmd
from precache.cmd import all_in_one_runner as all_in_one

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


def main(argv=None):
    from precache import conf as precache_conf
    precache_conf.CONF.register_cli_opts(cli_opts)
    conf = cmd.prepare(sys.argv[1:] if argv is None else argv,
                       'Run precache end to end in one process: no broker, '
                       'no Glance, nothing to configure.')
    work_dir = conf.work_dir or tempfile.mkdtemp(prefix='precache-aio-')
    runner = all_in_one.AllInOne(conf, work_dir, hosts=conf.hosts,
                                 images_dir=conf.images_dir,
                                 compression=conf.compression)
    return runner.run()


if __name__ == '__main__':
    sys.exit(main())
