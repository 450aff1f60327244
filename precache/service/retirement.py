"""When the image server may remove what it published: the one policy.

After each pipeline run the service retires the images no agent should
fetch any more: :meth:`~precache.service.servers.base.ImageServer.retire`
removes their artifacts (``http``), torrents (``bittorrent``) or objects
(``swift``). An image is retired when all of these hold:

* it is not desired: no lister lists it, and it is not requested (or its
  pin ran out);
* ``[service] retire_grace_period`` seconds went by since it was last
  desired or used: the latest of the last listing, the last change of its
  record (an unlisting, a release), the end of its pin, its last serve
  and the start of its last distribution round. An agent cast before
  then has had the grace period to fetch it;
* no distribution round of it is open: agents may still be downloading
  (a round ends when every host answered or after ``[service]
  round_timeout``);
* the pipeline is not processing it (an on-demand request that arrived
  meanwhile is served, not retired).

Retiring is idempotent; an image retired by this process is not retired
again until it is desired again, and a failure is retried at the next
run. A new service instance (after a restart or a failover) retires each
old image once more, which costs the server a check.
"""

import datetime

from oslo_log import log as logging

from precache.db import api as db_api

LOG = logging.getLogger(__name__)


def retire_from(row, last_round):
    """The time from which ``row``'s image counts as no longer served.

    :param row: the image's database row (a dict).
    :param last_round: when its last round started, or None.
    """
    times = [row.get(name) for name in ('last_seen', 'updated_at',
                                        'served_at', 'pinned_until')]
    times.append(last_round)
    times = [t for t in times if t is not None]
    return max(times) if times else None


class Retirement(object):
    """Applies the policy above to the images of the database.

    :param conf: the service's ConfigOpts (``[service]
        retire_grace_period``).
    :param db: the :class:`~precache.db.api.StateDB`.
    :param server: the ImageServer whose :meth:`retire` is called.
    """

    def __init__(self, conf, db, server):
        self.conf = conf
        self.db = db
        self.server = server
        #: Images this process retired and not served since.
        self.retired = set()

    def due(self, rows, activity, now):
        """Return the ids of the images to retire now, sorted.

        :param rows: every image row (dicts).
        :param activity: ``{image_id: (last round start, open rounds)}``.
        """
        grace = datetime.timedelta(
            seconds=self.conf.service.retire_grace_period)
        due = []
        for row in rows:
            image_id = row['id']
            if self.db.is_desired(row, now):
                self.retired.discard(image_id)
                continue
            if image_id in self.retired:
                continue
            last_round, open_rounds = activity.get(image_id, (None, 0))
            if open_rounds:
                continue
            since = retire_from(row, last_round)
            if since is None or since + grace <= now:
                due.append(image_id)
        return sorted(due)

    def sweep(self, unless_busy, now=None):
        """Retire the images that are due.

        :param unless_busy: ``unless_busy(image_id)`` is a context manager
            yielding whether the image is free, and keeping the pipeline
            from starting to process it until the context exits.
        :returns: the ids of the images retired.
        """
        now = now or db_api.utcnow()
        due = self.due(self.db.list_images(), self.db.round_activity(), now)
        done = []
        for image_id in due:
            with unless_busy(image_id) as free:
                if not free or self._desired_again(image_id, now):
                    continue
                try:
                    self.server.retire(image_id)
                except Exception as exc:
                    LOG.warning('Retiring image %s failed, tried again at '
                                'the next run: %s', image_id, exc)
                    continue
            self.retired.add(image_id)
            done.append(image_id)
        if done:
            LOG.info('Retired %d image(s) no longer served for %d s: %s',
                     len(done), self.conf.service.retire_grace_period,
                     ', '.join(done))
        return done

    def _desired_again(self, image_id, now):
        """Whether a request made the image desired since the listing."""
        return self.db.is_desired(self.db.get_image(image_id), now)
