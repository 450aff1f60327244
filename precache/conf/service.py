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
                     'de-duplicated by image id. Built in: glance (images '
                     'of the [glance_lister] filter), static (the image ids '
                     'of [static_lister]), directory (the files of '
                     '[directory_lister] path, file name = image id).'),
    cfg.StrOpt('fetcher',
               default='glance',
               help='ImageFetcher plugin (namespace precache.fetchers) that '
                    'brings each image\'s bytes to the staging directory. '
                    'Built in: glance (downloads from Glance), swift (from '
                    'Glance\'s Swift store directly), file (from a local '
                    'directory).'),
    cfg.StrOpt('server',
               default='http',
               help='ImageServer plugin (namespace precache.servers) that '
                    'makes images available to the agents. Built in: http '
                    '(the built-in web server, compressed artifacts), '
                    'glance (agents download from Glance themselves), '
                    'bittorrent (peer to peer, with the http server\'s '
                    'artifact as web seed), swift (the artifact uploaded '
                    'to a Swift container, fetched by TempURL).'),
    cfg.StrOpt('staging_dir',
               default='/var/lib/precache/staging',
               help='Directory where fetched, verified images are kept. It '
                    'needs room for every listed image.'),
    cfg.IntOpt('fetch_workers',
               default=2, min=1,
               help='Images fetched and served in parallel in one run.'),
    cfg.IntOpt('image_retry_backoff',
               default=60, min=1, mutable=True,
               help='Seconds before the service tries again to fetch and '
                    'serve an image that failed (e.g. its bytes in Glance '
                    'do not match its checksum); doubled after each further '
                    'failure in a row, up to image_retry_backoff_max. A '
                    'success resets it; so does a new version of the image '
                    '(another hash, size or updated_at in the listing), '
                    'tried at the next run, and "precache cache IMAGE", '
                    'tried at once. "precache images" shows the failure '
                    'and the next try.'),
    cfg.IntOpt('image_retry_backoff_max',
               default=3600, min=1, mutable=True,
               help='Upper bound (seconds) of the wait between two tries '
                    'of an image the service fails to fetch or serve.'),
    cfg.BoolOpt('auto_db_sync',
                default=True,
                help='Upgrade the database schema when the service starts. '
                     'Turn it off when several services share a database '
                     'and run "precache-manage db sync" once per upgrade '
                     'instead.'),
    cfg.IntOpt('retire_grace_period',
               default=86400, min=0, mutable=True,
               help='Seconds an image stays published by the image server '
                    '(http artifacts, seeded torrents, Swift objects) '
                    'after it stopped being desired (unlisted, released or '
                    'its pin ended), counted from the last time it was '
                    'listed, requested, served or cast. It is removed '
                    'after that, and never while a distribution round of '
                    'it is open. Keep it longer than the slowest '
                    'download; images already on compute hosts are never '
                    'touched.'),
]

convergence_opts = [
    cfg.IntOpt('service_down_time',
               default=180, min=1, mutable=True,
               help='A host whose last heartbeat is older than this many '
                    'seconds is down: it is not counted as a target and '
                    'gets no casts until it is back. Keep it a few times '
                    '[agent] heartbeat_interval.'),
    cfg.IntOpt('reconcile_interval',
               default=60, min=1, mutable=True,
               help='Seconds between two convergence passes, which send '
                    'targeted casts of what live hosts lack. A pass also '
                    'follows every pipeline run and every host that comes '
                    'back up.'),
    cfg.IntOpt('retry_backoff',
               default=60, min=1, mutable=True,
               help='Seconds before an image is cast again to a host '
                    'where it failed or went missing; doubled after each '
                    'further attempt, up to retry_backoff_max. It runs '
                    'from each cast, so it also delays the next cast of '
                    'an unanswered one when it is longer than '
                    'report_timeout.'),
    cfg.IntOpt('retry_backoff_max',
               default=3600, min=1, mutable=True,
               help='Upper bound (seconds) of the backoff between two casts '
                    'of one image to one host.'),
    cfg.IntOpt('busy_retry_delay',
               default=10, min=1, mutable=True,
               help='Seconds before an image is cast again to a host that '
                    'answered busy (its agent held as many requests as '
                    '[agent] max_queued_requests allows). A convergence '
                    'pass for such hosts runs after this delay, and a busy '
                    'answer does not count as a failed attempt, so it '
                    'does not grow the retry_backoff.'),
    cfg.IntOpt('report_timeout',
               default=3600, min=1, mutable=True,
               help='Seconds after a cast without any answer from the host '
                    'after which the image is cast again (the cast was '
                    'lost, or the agent died while downloading). Each '
                    'cast also starts the host\'s retry_backoff for the '
                    'image, so an unanswered cast is sent again after '
                    'the longer of the two.'),
    cfg.IntOpt('max_casts_per_cycle',
               default=2000, min=1, mutable=True,
               help='Targeted casts sent by one convergence pass at most; '
                    'the rest wait for the next pass. Bounds the load a '
                    'mass repair puts on the broker and the origin.'),
    cfg.IntOpt('max_casts_per_host',
               default=5, min=1, mutable=True,
               help='Targeted casts one host receives in one convergence '
                    'pass at most, so that a broken host cannot cause a '
                    'storm.'),
    cfg.IntOpt('round_timeout',
               default=6 * 3600, min=1, mutable=True,
               help='A distribution round (a batch of casts of one image) '
                    'ends, with its precache.cache.end notification, when '
                    'every host answered or after this many seconds.'),
    cfg.IntOpt('inventory_grace',
               default=120, min=0, mutable=True,
               help='A heartbeat whose inventory lacks an image reported '
                    'cached less than this many seconds ago does not mark '
                    'it missing (the heartbeat may have been built before '
                    'the image landed).'),
]


def register_opts(conf):
    conf.register_group(service_group)
    conf.register_opts(service_opts + convergence_opts, group=service_group)


def list_opts():
    return {service_group: service_opts + convergence_opts}
