"""Options of precache-agent, the compute-host side."""

from oslo_config import cfg

agent_group = cfg.OptGroup(
    'agent', title='precache-agent',
    help='How the agent on a compute host downloads, verifies and stores '
         'images.')

agent_opts = [
    cfg.StrOpt('store',
               default='nova-libvirt',
               help='ImageStore plugin (namespace precache.stores) deciding '
                    'where a verified image lands. Built in: nova-libvirt '
                    '(nova-compute\'s image cache, _base), directory (a '
                    'plain directory).'),
    cfg.IntOpt('max_concurrent_downloads',
               default=1, min=1, mutable=True,
               help='Images downloaded at full speed at the same time '
                    '(download slots). Further requests wait their turn; '
                    'a download slower than min_download_rate for '
                    'slow_download_grace seconds gives up its slot (see '
                    'max_parked_downloads). A free slot goes to the '
                    'waiting request whose origin (host and port of its '
                    'first source) has the fewest downloads running.'),
    cfg.IntOpt('max_parked_downloads',
               default=16, min=0, mutable=True,
               help='Slow downloads that may go on in the background '
                    'without a download slot. A download delivering less '
                    'than min_download_rate over slow_download_grace '
                    'seconds parks here, so that a trickling source cannot '
                    'hold a slot; it is still bounded by download_deadline '
                    'and min_rate_window, and takes a slot back before it '
                    'reads on if it speeds up again. A slow download that '
                    'finds every place taken fails at once (the next '
                    'source is tried). 0 turns parking off: a slow '
                    'download keeps its slot until min_rate_window fails '
                    'it.'),
    cfg.IntOpt('slow_download_grace',
               default=5, min=1, mutable=True,
               help='Seconds over which a download holding a slot must '
                    'deliver min_download_rate on average; a slower one '
                    'parks (see max_parked_downloads). This is the longest '
                    'a trickling source delays the next request.'),
    cfg.IntOpt('max_queued_requests',
               default=16, min=0, mutable=True,
               help='Cache requests that may wait for a download slot '
                    'beyond the max_concurrent_downloads running. Further '
                    'requests are refused at once and reported failed '
                    'with the code busy; the service asks again after its '
                    'retry backoff. An image already in the store is '
                    'still reported existing. When the queue is full, a '
                    'request from an origin with fewer waiting requests '
                    'than the busiest origin takes the place of that '
                    'origin\'s newest one (which is answered busy), so a '
                    'flood from one origin cannot lock the others out.'),
    cfg.IntOpt('download_deadline',
               default=3600, min=1, mutable=True,
               help='Seconds one download from one source may take in all '
                    '(time spent under bandwidth_limit included). A source '
                    'that has not delivered the whole image by then fails '
                    'and the next source is tried. Raise it for images '
                    'that take longer on this host\'s link.'),
    cfg.IntOpt('min_download_rate',
               default=64 * 1024, min=0, mutable=True,
               help='Bytes per second a source must deliver on average '
                    'over each min_rate_window; a slower (trickling or '
                    'stalled) source fails and the next source is tried. '
                    'Time spent waiting for bandwidth_limit does not '
                    'count. For BitTorrent every verified piece counts, '
                    'received in order or not. 0 disables the check.'),
    cfg.IntOpt('min_rate_window',
               default=60, min=1, mutable=True,
               help='Seconds over which min_download_rate is averaged: a '
                    'source too slow fails within this long (plus a '
                    'fraction of a second).'),
    cfg.IntOpt('bandwidth_limit',
               default=0, min=0, mutable=True,
               help='Cap on the bytes per second received by all downloads '
                    'of this agent together; 0 means no cap. Use it to '
                    'keep pre-caching from competing with instance '
                    'traffic.'),
    cfg.FloatOpt('start_delay_window',
                 default=0.0, min=0.0, mutable=True,
                 help='Each download waits a random delay of up to this many '
                      'seconds before it starts, so that hosts behind the '
                      'same cache proxy do not all miss it at once and the '
                      'first request warms the cache.'),
    cfg.IntOpt('disk_reserve_mb',
               default=10240, min=0, mutable=True,
               help='Free space (MiB) that must remain on the store\'s file '
                    'system after an image lands. A download that would '
                    'leave less is refused before it starts.'),
    cfg.IntOpt('cache_size_cap_mb',
               default=0, min=0, mutable=True,
               help='Upper bound (MiB) for the images precache keeps in the '
                    'store; 0 means no cap. A download that would exceed it '
                    'is refused.'),
    cfg.ListOpt('proxies',
                default=[],
                help='HTTP cache proxies (URLs such as '
                     'http://squid1.example.org:3128) for http sources. Each '
                     'host picks its proxy by consistent hashing of its host '
                     'name and fails over to the next ones, then to the '
                     'origin.'),
    cfg.ListOpt('allowed_origins',
                default=[], mutable=True,
                help='URL prefixes this agent may download image bytes '
                     'from, e.g. http://origin.example.org:8780/,'
                     'https://swift.example.org/v1/AUTH_precache/: the '
                     'URLs of http and swift sources, every '
                     'redirect target, and a torrent\'s web seeds, '
                     'trackers, inject_url and peers (the seed, compared '
                     'as bittorrent://host:port/). Anything else is '
                     'refused before connecting, as a failure of that '
                     'source (the next one is tried). Schemes and hosts '
                     'compare case-insensitively and exactly, default '
                     'ports are filled in, and a prefix\'s path ends at a '
                     '/ boundary. Proxies and the glance source (the '
                     'agent\'s own [glance] endpoint) are not checked. '
                     'Empty (the default) allows every URL; setting it '
                     'to the service\'s web server, tracker and seed and '
                     'to your Swift account is recommended, so that a '
                     'cast signed with a stolen key cannot make agents '
                     'download from elsewhere.'),
    cfg.BoolOpt('direct_after_proxies',
                default=True,
                help='After every proxy failed, try the origin directly.'),
    cfg.IntOpt('download_retries',
               default=3, min=0,
               help='Times a broken HTTP transfer is resumed (with a Range '
                    'request) before the source counts as failed.'),
    cfg.FloatOpt('connect_timeout',
                 default=10.0, min=0.1,
                 help='Seconds to wait for a source to accept a '
                      'connection.'),
    cfg.FloatOpt('read_timeout',
                 default=60.0, min=0.1,
                 help='Seconds without receiving a byte after which a '
                      'transfer counts as broken.'),
    cfg.IntOpt('heartbeat_interval',
               default=60, min=1,
               help='Seconds between two heartbeats carrying this host\'s '
                    'inventory and disk figures to the service.'),
    cfg.IntOpt('keepalive_interval',
               default=3600, min=60,
               help='Seconds between two touches of the images the service '
                    'still wants, which keeps Nova\'s cache manager from '
                    'aging them out. Must be well below Nova\'s '
                    'remove_unused_original_minimum_age_seconds.'),
    cfg.IntOpt('wanted_expiry',
               default=6 * 3600, min=60,
               help='Seconds after its last cache request (or after its '
                    'pin_until) during which an image is still kept alive '
                    'by touches. The service re-sends its requests every '
                    'run, so this only matters when an image is no longer '
                    'listed or the service is down.'),
    cfg.IntOpt('desired_timeout',
               default=30, min=1,
               help='Seconds the agent waits for the service\'s answer when '
                    'it asks for the images this host should have (at '
                    'start-up, retried every as many seconds until the '
                    'service answers, and before each keep-alive pass).'),
    cfg.ListOpt('labels',
                default=[],
                help='Labels of this host (aggregate or availability zone '
                     'names, ...). Cache requests targeted at labels are '
                     'acted on only by hosts carrying one of them.'),
]


def register_opts(conf):
    conf.register_group(agent_group)
    conf.register_opts(agent_opts, group=agent_group)


def list_opts():
    return {agent_group: agent_opts}
