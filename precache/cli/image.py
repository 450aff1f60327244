"""One image: ``precache show``, ``precache cache``, ``precache uncache``."""

import time

from cliff import lister
from cliff import show

from precache.cli import base
from precache.cli import columns
from precache.cli import overview
from precache.cli import progress
from precache.cli import units

#: One row per host of ``show_image``.
IMAGE_HOST_FIELDS = (
    ('Host', 'host', None),
    ('State', 'up', columns.UpColumn),
    ('Targeted', 'targeted', None),
    ('Status', 'status', None),
    ('Reason', 'reason', None),
    ('Attempts', 'attempts', None),
    ('Bytes', 'bytes', columns.SizeColumn),
    ('Source', 'source', None),
    ('Base', 'delta_base', None),
    ('Seconds', 'seconds', columns.SecondsColumn),
    ('Updated', 'updated_at', columns.TimestampColumn),
)


def add_image_argument(parser):
    """Add the positional ``IMAGE`` (a Glance image id)."""
    parser.add_argument('image_id', metavar='IMAGE',
                        help='Glance image id')


class ShowImage(base.ServiceCommand, lister.Lister):
    """Show where one image is cached: one row per known host.

    Under the table, a summary counts the live target hosts that are
    done, failed, missing, in progress or waiting, and says why
    precache-service itself cannot fetch the image, if it cannot.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        add_image_argument(parser)
        parser.add_argument('--targeted', action='store_true',
                            help='Only the hosts the image is meant for.')
        return parser

    def take_action(self, parsed_args):
        result = self.client.call('show_image',
                                  image_id=parsed_args.image_id)
        hosts = result.get('hosts') or ()
        if parsed_args.targeted:
            hosts = [host for host in hosts if host.get('targeted')]
        image = result.get('image') or {}
        self.note(parsed_args, '%s (%s): %s' % (
            parsed_args.image_id, image.get('name') or 'no name',
            progress.describe_summary(result.get('summary') or {})))
        failure = progress.describe_service_failure(parsed_args.image_id,
                                                    image)
        if failure:
            self.note(parsed_args, failure)
        if image.get('delta_base'):
            self.note(parsed_args, 'Offered as a delta against image %s '
                      '(Source "delta", Base: the image it was assembled '
                      'from, Bytes: what travelled) to the hosts holding '
                      'it, in full to the others.' % image['delta_base'])
        return columns.table(IMAGE_HOST_FIELDS, hosts)


class CacheImage(base.ServiceCommand, show.ShowOne):
    """Ask precache-service to cache an image now.

    Without --host and --label every host is a target. The service
    records the request at once and distributes the image in the
    background: follow it with "precache watch IMAGE".
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        add_image_argument(parser)
        parser.add_argument('--host', dest='hosts', action='append',
                            default=[], metavar='HOST',
                            help='Target host name or glob (repeatable).')
        parser.add_argument('--label', dest='labels', action='append',
                            default=[], metavar='LABEL',
                            help='Target the hosts with this label, e.g. '
                                 'an aggregate or availability zone '
                                 '(repeatable).')
        parser.add_argument('--pin-for', type=units.parse_duration,
                            metavar='DURATION',
                            help='Keep the image on the hosts for this '
                                 'long (30m, 12h, 7d or seconds); the '
                                 'request lapses then.')
        return parser

    def take_action(self, parsed_args):
        pin_until = (time.time() + parsed_args.pin_for
                     if parsed_args.pin_for else None)
        summary = self.client.call('request_cache',
                                   image_id=parsed_args.image_id,
                                   hosts=parsed_args.hosts,
                                   labels=parsed_args.labels,
                                   pin_until=pin_until)
        return columns.record(overview.IMAGE_FIELDS, summary)


class UncacheImage(base.ServiceCommand, show.ShowOne):
    """Withdraw an on-demand request for an image.

    Nothing is deleted on the hosts: they stop keeping the image alive
    and Nova's own cache manager ages it out once no instance uses it.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        add_image_argument(parser)
        return parser

    def take_action(self, parsed_args):
        summary = self.client.call('release', image_id=parsed_args.image_id)
        return columns.record(overview.IMAGE_FIELDS, summary)
