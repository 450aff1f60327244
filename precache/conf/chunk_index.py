"""Options of the agent's chunk index (delta distribution, agent side)."""

from oslo_config import cfg

chunk_index_group = cfg.OptGroup(
    'chunk_index', title='Chunk index of the agent\'s store (precache-agent)',
    help='With delta distribution ([delta] enabled at the service), an '
         'agent builds a new version of an image from the chunks of a '
         'version it holds. With this index, a chunk that is no longer '
         'where the delta expects it (the base file changed) is taken '
         'from any image of the store that holds it, still checked '
         'against its digest.')

chunk_index_opts = [
    cfg.BoolOpt('enabled',
                default=False,
                help='Keep an index of the content-defined chunks of the '
                     'images in the store. Each image is read and hashed '
                     'once, after it lands (and once for the images already '
                     'there at start), by a thread of the lowest CPU '
                     'priority that pauses while downloads run. Off, '
                     'landings cost no CPU for it.'),
    cfg.StrOpt('directory',
               default='$state_path/chunk-index',
               help='Directory of the index (a sqlite database of about 90 '
                    'bytes per chunk). Never inside the store: Nova\'s '
                    'image cache holds images only.'),
    cfg.IntOpt('average_chunk_size',
               min=4096, max=512 * 1024,
               help='Average chunk size the images are cut with. Unset '
                    '(the default), the index follows the deltas: each '
                    'names the average chunk size precache-service cut it '
                    'with ([delta] average_chunk_size), the index uses the '
                    'last one named (16384 until then) and a new one '
                    'indexes the store again, in the background. Set, it '
                    'is kept, and a delta cut otherwise is logged as a '
                    'warning: the index finds none of its chunks (deltas '
                    'still work, without it). A change indexes the store '
                    'again.'),
]


def register_opts(conf):
    conf.register_group(chunk_index_group)
    conf.register_opts(chunk_index_opts, group=chunk_index_group)


def list_opts():
    return {chunk_index_group: chunk_index_opts}
