"""Options of precache-service: its pipeline and its plugins."""

from oslo_config import cfg

service_group = cfg.OptGroup(
    'service', title='precache-service',
    help='The periodic List -> Fetch -> Serve -> Distribute pipeline.')

service_opts = [
    cfg.IntOpt('interval',
               default=300, min=1, mutable=True,
               help='Seconds between two runs of the pipeline. A run that '
                    'takes longer delays the next one; runs never overlap.'),
    cfg.ListOpt('listers',
                default=['glance'],
                help='ImageLister plugins (entry point namespace '
                     'precache.listers) whose results are merged and '
                     'de-duplicated by image id. Built in: glance, static.'),
    cfg.StrOpt('fetcher',
               default='glance',
               help='ImageFetcher plugin (namespace precache.fetchers) that '
                    'brings each image\'s bytes to the staging directory. '
                    'Built in: glance, swift, file.'),
    cfg.StrOpt('server',
               default='http',
               help='ImageServer plugin (namespace precache.servers) that '
                    'makes images available to the agents. Built in: http, '
                    'glance.'),
    cfg.StrOpt('staging_dir',
               default='/var/lib/precache/staging',
               help='Directory where fetched, verified images are kept. It '
                    'needs room for every listed image.'),
    cfg.IntOpt('fetch_workers',
               default=2, min=1,
               help='Images fetched and served in parallel in one run.'),
]


def register_opts(conf):
    conf.register_group(service_group)
    conf.register_opts(service_opts, group=service_group)


def list_opts():
    return {service_group: service_opts}
