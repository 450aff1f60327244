"""The ``glance`` lister: the active images matching filters in Glance."""

from oslo_config import cfg
from oslo_log import log as logging

from precache.common import glance
from precache.objects import image as image_mod
from precache.service.listers import base

LOG = logging.getLogger(__name__)

VISIBILITIES = (
    ('public', 'images every project sees'),
    ('private', 'images only their owner sees'),
    ('shared', 'images their owner shared with member projects'),
    ('community', 'images any project may use, unlisted by default'),
    ('all', 'any of the above'),
)


class GlanceLister(base.GlanceBackedLister):
    """Lists the active Glance images having the configured tags etc.

    Filters are sent to Glance as query parameters, so only matching
    images travel, and are checked again here, so a Glance that ignores
    one of them cannot widen the selection. Several ``owners`` mean one
    query per owner, merged by image id.

    :param conf: the process's ConfigOpts; Glance is reached with the
        ``[glance]`` options, filters come from ``[glance_lister]``.
    :param client: a glanceclient v2 client to use instead of one built
        from ``[glance]``.
    """

    @classmethod
    def get_config_group(cls):
        return 'glance_lister'

    @classmethod
    def get_config_opts(cls):
        return [
            cfg.ListOpt('tags',
                        default=[], mutable=True,
                        help='Pre-cache only images having every one of '
                             'these tags (e.g. "golden"). Empty: tags do '
                             'not matter. Set tags or properties, or every '
                             'image the [glance] credentials can see is '
                             'pre-cached.'),
            cfg.DictOpt('properties',
                        default={}, mutable=True,
                        help='Pre-cache only images whose properties have '
                             'all of these values, as key:value pairs '
                             '(e.g. "precache:true,os_distro:ubuntu"). '
                             'Values are compared as strings.'),
            cfg.ListOpt('owners',
                        default=[], mutable=True,
                        help='Pre-cache only images owned by one of these '
                             'project ids. Empty: any owner the [glance] '
                             'credentials can see.'),
            cfg.StrOpt('visibility',
                       default='all', choices=VISIBILITIES, mutable=True,
                       help='Pre-cache only images of this visibility; '
                            '"all" includes community images, which Glance '
                            'otherwise leaves out of listings.'),
            cfg.IntOpt('page_size',
                       default=100, min=1, max=1000,
                       help='Images requested from Glance per page.'),
            cfg.IntOpt('limit',
                       default=0, min=0, mutable=True,
                       help='Pre-cache at most this many images from this '
                            'lister (Glance lists the newest first); 0 means '
                            'no limit. A safety cap against filters that '
                            'match far more images than the compute hosts '
                            'can hold; a warning is logged when it cuts.'),
        ]

    def list(self):
        """Return the matching active images as ImageRecords.

        :raises PrecacheException: Glance could not be listed.
        """
        opts = self.options
        # One more than the limit tells whether the limit cut the list.
        limit = opts.limit + 1 if opts.limit else None
        records = {}
        for filters in self._queries(opts):
            for img in glance.list_images(self.glance, filters,
                                          page_size=opts.page_size,
                                          limit=limit):
                if img['id'] not in records and self._matches(img, opts):
                    records[img['id']] = image_mod.ImageRecord.from_glance(
                        img, lister='glance')
        result = list(records.values())
        if opts.limit and len(result) > opts.limit:
            LOG.warning('The glance lister found more than %(limit)d '
                        'images; only %(limit)d are pre-cached. Narrow the '
                        '[glance_lister] filters or raise its limit.',
                        {'limit': opts.limit})
            result = result[:opts.limit]
        LOG.debug('The glance lister found %d image(s)', len(result))
        return result

    @staticmethod
    def _queries(opts):
        """Yield the Glance filters of each query (one per owner)."""
        common = dict(opts.properties)
        common.update(status='active', visibility=opts.visibility)
        if opts.tags:
            common['tag'] = list(opts.tags)
        for owner in opts.owners or [None]:
            filters = dict(common)
            if owner:
                filters['owner'] = owner
            yield filters

    @staticmethod
    def _matches(img, opts):
        """Check client-side what the Glance query asked for."""
        if img.get('status') != 'active':
            return False
        if not set(opts.tags).issubset(img.get('tags') or ()):
            return False
        if opts.owners and img.get('owner') not in opts.owners:
            return False
        if (opts.visibility != 'all' and
                img.get('visibility') != opts.visibility):
            return False
        return all(_same(img.get(key), value)
                   for key, value in opts.properties.items())


def _same(actual, expected):
    """Compare an image property with a configured (string) value."""
    if actual is None:
        return False
    if isinstance(actual, bool):
        return str(actual).lower() == expected.lower()
    return str(actual) == expected
