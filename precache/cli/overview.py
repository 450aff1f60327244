"""Cloud-wide views: ``precache status``, ``precache hosts``,
``precache images``."""

from cliff import lister

from precache.cli import base
from precache.cli import columns
from precache.cli import progress
from precache.objects import states

#: Per-host states counted by ``status``, in the order of the columns.
STATES = (states.CACHED, states.EXISTING, states.DOWNLOADING,
          states.PENDING, states.FAILED, states.MISSING, 'waiting')

HOST_FIELDS = (
    ('Host', 'name', None),
    ('State', 'up', columns.UpColumn),
    ('Labels', 'labels', columns.ListColumn),
    ('Disk total', 'disk_total', columns.SizeColumn),
    ('Disk free', 'disk_free', columns.SizeColumn),
    ('Cache size', 'cache_bytes', columns.SizeColumn),
    ('Last heartbeat', 'last_heartbeat', columns.TimestampColumn),
    ('Images cached', 'images_cached', None),
    ('Images failed', 'images_failed', None),
    ('Agent version', 'agent_version', None),
)

IMAGE_FIELDS = (
    ('Image ID', 'image_id', None),
    ('Name', 'name', None),
    ('Disk format', 'disk_format', None),
    ('Size', 'size', columns.SizeColumn),
    ('Listed by', 'listed_by', columns.ListColumn),
    ('Listed', 'listed', None),
    ('Requested', 'requested', None),
    ('Pinned until', 'pinned_until', columns.TimestampColumn),
    ('Targets', 'targets', columns.TargetsColumn),
    ('Generation', 'generation', None),
    ('Desired', 'desired', None),
    ('First seen', 'first_seen', columns.TimestampColumn),
    ('Last seen', 'last_seen', columns.TimestampColumn),
    ('Error', 'error', None),
    ('Failures', 'failures', None),
    ('Next try', 'retry_at', columns.TimestampColumn),
)

STATUS_FIELDS = (
    (('Image ID', 'image_id', None), ('Name', 'name', None),
     ('Live targets', 'live_targets', None)) +
    tuple((state.capitalize(), state, None) for state in STATES) +
    (('Service failures', 'failures', columns.CountColumn),))


class Status(base.ServiceCommand, lister.Lister):
    """Show every image with how many live target hosts are in each state.

    Columns: cached, existing (found already there), downloading,
    pending (asked, not started), failed, missing (gone from a host's
    cache), waiting (not asked yet) and the number of live targets; then
    the failures in a row of precache-service itself with the image
    (empty when none), and under the table the images it cannot fetch and
    which service instance leads.
    """

    def take_action(self, parsed_args):
        status = self.client.call('get_status')
        hosts = status.get('hosts') or {}
        self.note(parsed_args, 'Hosts: %s up, %s down, %s in all.' % (
            hosts.get('up', 0), hosts.get('down', 0), hosts.get('total', 0)))
        failing = [image.get('image_id') for image in status.get('images')
                   or () if progress.service_failed(image)]
        if failing:
            self.note(parsed_args, 'precache-service cannot fetch %d '
                      'image(s): %s; "precache show IMAGE" says why.'
                      % (len(failing), ', '.join(failing)))
        service = status.get('service')
        if service:
            self.note(parsed_args, 'Leader: %s (answered by %s).' % (
                service.get('leader') or 'unknown', service.get('instance')))
        return columns.table(STATUS_FIELDS,
                             [_flatten_counts(image)
                              for image in status.get('images') or ()])


def _flatten_counts(image):
    """Return the row dict of one image of ``get_status``."""
    counts = image.get('counts') or {}
    row = {state: counts.get(state, 0) for state in STATES}
    row.update(image_id=image.get('image_id'), name=image.get('name'),
               live_targets=image.get('live_targets', 0),
               failures=image.get('failures') or 0)
    return row


class Hosts(base.ServiceCommand, lister.Lister):
    """List the compute hosts precache knows, with disk and cache use."""

    def take_action(self, parsed_args):
        return columns.table(HOST_FIELDS, self.client.call('list_hosts'))


class Images(base.ServiceCommand, lister.Lister):
    """List the images precache keeps cached: listed or requested."""

    def take_action(self, parsed_args):
        return columns.table(IMAGE_FIELDS, self.client.call('list_images'))
