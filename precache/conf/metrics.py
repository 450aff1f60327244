"""Options of the Prometheus metrics of both daemons (``[metrics]``).

precache-service serves ``/metrics`` over HTTP when ``enabled``;
precache-agent writes a node_exporter textfile when ``textfile`` is set.
See doc/source/admin/metrics.rst for every metric.
"""

from oslo_config import cfg

metrics_group = cfg.OptGroup(
    'metrics', title='Prometheus metrics',
    help='precache-service exposes its metrics on an HTTP endpoint '
         '(enabled, listen_address, port); precache-agent writes its '
         'metrics to a file that node_exporter\'s textfile collector '
         'reads (textfile, textfile_interval), so compute hosts open no '
         'further port.')

metrics_opts = [
    cfg.BoolOpt('enabled',
                default=False,
                help='precache-service only: serve Prometheus metrics on '
                     'http://listen_address:port/metrics. Every service '
                     'instance sharing a database reports the same '
                     'database-derived figures (hosts, images, rounds) '
                     'and its own in-process counters (casts, bytes '
                     'served, pipeline runs).'),
    cfg.HostAddressOpt('listen_address',
                       default='127.0.0.1',
                       help='precache-service only: the address the '
                            'metrics endpoint binds. The default is '
                            'reachable from this host only; set the '
                            'address of the network Prometheus scrapes '
                            'from (the endpoint has no authentication).'),
    cfg.PortOpt('port',
                default=9657,
                help='precache-service only: the port of the metrics '
                     'endpoint (0 picks a free port, for tests).'),
    cfg.StrOpt('textfile',
               default='',
               sample_default='/var/lib/node_exporter/textfile_collector/'
                              'precache_agent.prom',
               help='precache-agent only: the file the agent writes its '
                    'metrics to, in node_exporter\'s textfile directory '
                    '(--collector.textfile.directory); the name must end '
                    'in ".prom". The file is replaced atomically (written '
                    'beside it, then renamed), so node_exporter never '
                    'reads half of it. Empty: no metrics are written.'),
    cfg.IntOpt('textfile_interval',
               default=15,
               min=1,
               help='precache-agent only: seconds between two writes of '
                    'the metrics textfile. node_exporter reads the file '
                    'when it is scraped, so a value near the scrape '
                    'interval is enough.'),
]


def register_opts(conf):
    conf.register_group(metrics_group)
    conf.register_opts(metrics_opts, group=metrics_group)


def list_opts():
    return {metrics_group: metrics_opts}
