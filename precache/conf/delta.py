"""Options of delta distribution: new versions as chunks of old ones."""

from oslo_config import cfg

delta_group = cfg.OptGroup(
    'delta', title='Delta distribution (precache-service)',
    help='For a new version of an image, precache-service can send only '
         'the content-defined chunks that a previous version, already held '
         'by the hosts, lacks. Hosts without that version, or whose copy '
         'changed, download the full artifact as before. Works with the '
         'http, bittorrent and swift servers: the delta travels like the '
         'full artifact (beside it on the web server, its own torrent, an '
         'object beside it in Swift).')

delta_opts = [
    cfg.BoolOpt('enabled',
                default=False,
                help='Build and offer delta artifacts. Each served image is '
                     'then cut into chunks once (its index is kept in '
                     'index_dir); a new image gets a delta against the '
                     'image of the same name that most hosts hold. Agents '
                     'older than this release ignore deltas.'),
    cfg.IntOpt('average_chunk_size',
               default=16384, min=4096, max=512 * 1024,
               help='Average size of the content-defined chunks, in bytes '
                    '(chunks are 1/4 to 8 times this). Smaller chunks '
                    'find more shared bytes at the cost of larger deltas '
                    'headers and indexes (32 bytes per chunk). A change '
                    'applies to images indexed from then on. Each delta '
                    'names the size its base was cut with: agents\' chunk '
                    'indexes follow it (unless their [chunk_index] '
                    'average_chunk_size is set).'),
    cfg.StrOpt('index_dir',
               default='/var/lib/precache/chunks',
               help='Directory of the chunk indexes of served images, one '
                    'small file per image version. Not served to agents.'),
    cfg.BoolOpt('hosts_hold_raw',
                default=True,
                help='Whether agents land images converted to raw (Nova\'s '
                     'force_raw_images, true by default): the base images '
                     'are then indexed in their raw form, which is what '
                     'the hosts hold. Set to false when hosts keep images '
                     'in their Glance format.'),
    cfg.IntOpt('compression_level',
               default=3, min=1, max=22,
               help='zstd level of the delta artifacts.'),
    cfg.IntOpt('convert_timeout',
               default=3600, min=1,
               help='Seconds qemu-img may take to convert a base image to '
                    'raw for indexing.'),
]


def register_opts(conf):
    conf.register_group(delta_group)
    conf.register_opts(delta_opts, group=delta_group)


def list_opts():
    return {delta_group: delta_opts}
