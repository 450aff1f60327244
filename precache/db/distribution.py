"""Host x image rows and distribution rounds: what is where, and the
casts that put it there.

A mixin of :class:`precache.db.api.StateDB` (its ``_read``/``_write``
transactions and ``_host_row``), kept apart so each module holds one
family of queries.
"""

import collections
import contextlib

import sqlalchemy as sa

from precache.db import sql
from precache.objects import states

HOSTS = sql.HOSTS
IMAGES = sql.IMAGES
HOST_IMAGES = sql.HOST_IMAGES
ROUNDS = sql.ROUNDS

#: Rows a streamed read of :meth:`DistributionQueries.lacking_rows`
#: fetches at a time.
_ROW_BUFFER = 500

#: What a live host lacks: a host without a row for the image, or whose
#: row is to be retried (``has_row``).
Lacking = collections.namedtuple(
    'Lacking', 'host_id name labels image_id has_row')


class DistributionQueries(object):
    """Queries on ``host_images`` and ``rounds``."""

    # Host x image ---------------------------------------------------------

    def image_hosts(self, image_id):
        """Return ``{host name: row dict}`` for one image."""
        query = (sa.select(HOSTS.c.name, HOST_IMAGES)
                 .select_from(HOST_IMAGES.join(
                     HOSTS, HOSTS.c.id == HOST_IMAGES.c.host_id))
                 .where(HOST_IMAGES.c.image_id == image_id))
        with self._read() as conn:
            return {r.name: dict(r._mapping) for r in conn.execute(query)}

    def status_counts(self, up_since):
        """Return ``{image_id: {status: count}}`` over the live hosts."""
        query = (sa.select(HOST_IMAGES.c.image_id, HOST_IMAGES.c.status,
                           sa.func.count())
                 .select_from(HOST_IMAGES.join(
                     HOSTS, HOSTS.c.id == HOST_IMAGES.c.host_id))
                 .where(HOSTS.c.last_heartbeat >= up_since)
                 .group_by(HOST_IMAGES.c.image_id, HOST_IMAGES.c.status))
        counts = {}
        with self._read() as conn:
            for image_id, status, count in conn.execute(query):
                counts.setdefault(image_id, {})[status] = count
        return counts

    def failure_codes(self, up_since):
        """Return ``{code: count}`` of the failed rows of live hosts."""
        query = (sa.select(HOST_IMAGES.c.code, sa.func.count())
                 .select_from(HOST_IMAGES.join(
                     HOSTS, HOSTS.c.id == HOST_IMAGES.c.host_id))
                 .where(HOSTS.c.last_heartbeat >= up_since,
                        HOST_IMAGES.c.status == states.FAILED)
                 .group_by(HOST_IMAGES.c.code))
        with self._read() as conn:
            return {code: count for code, count in conn.execute(query)}

    def host_ids(self, names):
        """Return the ids of the known hosts among ``names``."""
        ids = []
        with self._read() as conn:
            for chunk in sql.chunks(names):
                ids.extend(conn.execute(sa.select(HOSTS.c.id).where(
                    HOSTS.c.name.in_(chunk))).scalars())
        return ids

    def open_rounds(self):
        """Return ``{kind: count}`` of the rounds not ended yet."""
        query = (sa.select(ROUNDS.c.kind, sa.func.count())
                 .where(ROUNDS.c.ended_at.is_(None))
                 .group_by(ROUNDS.c.kind))
        with self._read() as conn:
            return dict(conn.execute(query).all())

    def lacking(self, image_ids, up_since, now, report_deadline,
                host_ids=None):
        """Return what live hosts lack: ``[(host_id, image_id, has_row)]``.

        Everything :meth:`lacking_rows` yields, read to the end.
        """
        with self.lacking_rows(image_ids, up_since, now, report_deadline,
                               host_ids=host_ids) as rows:
            return [(r.host_id, r.image_id, r.has_row) for r in rows]

    @contextlib.contextmanager
    def lacking_rows(self, image_ids, up_since, now, report_deadline,
                     host_ids=None):
        """Iterate over what live hosts lack, read as it is consumed.

        A live host lacks an image when it has no row for it, when its row
        is failed or missing and its backoff ``next_attempt_at`` has
        passed, or when a cast went unanswered since before
        ``report_deadline`` (and its backoff has passed too).

        Yields :class:`Lacking` items (each with the host's name and
        labels, so the reader needs no list of every live host): first
        the hosts without a row, image by image in ``image_ids``' order,
        then the rows to retry. The database sends rows as the caller
        takes them (a server-side cursor where the driver has one): a
        caller that stops early, once its caps are full, has not made the
        database read the rest.

        In the steady state every host has a row for every image and few
        rows are retried: both are found through indexes (the
        (image_id, status) index for the retries) without visiting every
        host x image pair. Whether an image has a row on every host is
        counted once and then remembered with the hosts' count and highest
        id (see :meth:`_images_with_every_row`).

        :param host_ids: only these hosts (a host back up); every host by
            default.
        """
        image_ids = list(image_ids)
        if not image_ids or (host_ids is not None and not host_ids):
            yield iter(())
            return
        with self._read() as conn:
            conn = conn.execution_options(stream_results=True,
                                          max_row_buffer=_ROW_BUFFER)
            rows = self._lacking(conn, image_ids, up_since, now,
                                 report_deadline, host_ids)
            try:
                yield rows
            finally:
                # Ends a query left half read before its connection.
                rows.close()

    def _lacking(self, conn, image_ids, up_since, now, report_deadline,
                 host_ids):
        hi = HOST_IMAGES
        live = HOSTS.c.last_heartbeat >= up_since
        if host_ids is not None:
            live = sa.and_(live, HOSTS.c.id.in_(host_ids))
        backoff_over = sa.or_(hi.c.next_attempt_at.is_(None),
                              hi.c.next_attempt_at <= now)
        # An in-progress row without a cast was reported by an agent
        # catching up on its own: its deadline runs from the report.
        asked = sa.func.coalesce(hi.c.cast_at, hi.c.reported_at)
        retry = sa.or_(
            sa.and_(hi.c.status.in_((states.FAILED, states.MISSING)),
                    backoff_over),
            sa.and_(hi.c.status.in_(states.IN_PROGRESS),
                    sa.or_(asked.is_(None), asked <= report_deadline),
                    backoff_over))
        retried = (states.FAILED, states.MISSING, *states.IN_PROGRESS)
        complete = self._images_with_every_row(conn, image_ids)
        host = (HOSTS.c.id, HOSTS.c.name, HOSTS.c.labels)
        for image_id in image_ids:
            if image_id in complete:
                continue
            has_row = sa.exists().where(hi.c.host_id == HOSTS.c.id,
                                        hi.c.image_id == image_id)
            for host_id, name, labels in _rows(
                    conn, sa.select(*host).where(live, ~has_row)):
                yield Lacking(host_id, name, labels or [], image_id, False)
        retries = (sa.select(*host, hi.c.image_id)
                   .select_from(hi.join(HOSTS, HOSTS.c.id == hi.c.host_id))
                   .where(hi.c.image_id.in_(image_ids),
                          # Redundant with ``retry``: lets the planner
                          # search the (image_id, status) index on both
                          # columns.
                          hi.c.status.in_(retried), live, retry))
        for host_id, name, labels, image_id in _rows(conn, retries):
            yield Lacking(host_id, name, labels or [], image_id, True)

    def _images_with_every_row(self, conn, image_ids):
        """Return the set of ``image_ids`` that have a row on every host.

        Rows are never deleted, except with their host (or image): an
        image found with a row on every host keeps one on every host as
        long as no host was added (the highest host id is the same) and
        none deleted (so is their count). That is remembered per image,
        so a steady-state pass reads two figures of the hosts' primary
        key instead of counting every host x image row.
        """
        hosts = tuple(conn.execute(sa.select(
            sa.func.count(HOSTS.c.id), sa.func.max(HOSTS.c.id))).one())
        known = self.__dict__.setdefault('_every_row_at', {})
        complete = {image_id for image_id in image_ids
                    if known.get(image_id) == hosts}
        unknown = [image_id for image_id in image_ids
                   if image_id not in complete]
        if not unknown:
            return complete
        hi = HOST_IMAGES
        for chunk in sql.chunks(unknown):
            for image_id, rows in conn.execute(
                    sa.select(hi.c.image_id, sa.func.count())
                    .where(hi.c.image_id.in_(chunk))
                    .group_by(hi.c.image_id)):
                if rows >= hosts[0]:
                    known[image_id] = hosts
                    complete.add(image_id)
        return complete

    def open_round(self, image_id, generation, kind, casts, now=None):
        """Record a batch of casts of one image as a new round.

        :param casts: ``[(host_id, has_row, next_attempt_at)]``: the hosts
            cast to, whether they have a row, and their backoff deadline.
            ``has_row`` was read before: a host's report or heartbeat may
            have inserted its row since; that row is then updated like the
            others.
        :returns: the round's id.
        """
        now = now or sql.utcnow()
        with self._write() as conn:
            round_id = conn.execute(ROUNDS.insert().values(
                image_id=image_id, generation=generation, kind=kind,
                total=len(casts), answered=0, cached=0, failed=0,
                started_at=now, created_at=now)).inserted_primary_key[0]
            common = dict(status=states.PENDING, generation=generation,
                          round_id=round_id, cast_at=now, updated_at=now)
            new = [dict(host_id=host_id, image_id=image_id, attempts=1,
                        next_attempt_at=deadline, created_at=now, **common)
                   for host_id, has_row, deadline in casts if not has_row]
            sql.insert_or_update(
                conn, HOST_IMAGES, new, sql.HOST_IMAGE_KEY,
                lambda proposed: dict(
                    attempts=HOST_IMAGES.c.attempts + sa.literal_column(
                        '1', sa.Integer),
                    **{name: getattr(proposed, name) for name in
                       ('next_attempt_at', *common)}))
            # Rows sharing a backoff deadline (most of a round) are
            # updated together: a few statements, not one per host.
            by_deadline = {}
            for host_id, has_row, deadline in casts:
                if has_row:
                    by_deadline.setdefault(deadline, []).append(host_id)
            for deadline, host_ids in by_deadline.items():
                for chunk in sql.chunks(host_ids):
                    conn.execute(HOST_IMAGES.update().where(
                        HOST_IMAGES.c.image_id == image_id,
                        HOST_IMAGES.c.host_id.in_(chunk)).values(
                            attempts=HOST_IMAGES.c.attempts + 1,
                            next_attempt_at=deadline, **common))
        return round_id

    def attempts(self, image_id, host_ids):
        """Return ``{host_id: attempts}`` of the given hosts' rows."""
        result = {}
        with self._read() as conn:
            for chunk in sql.chunks(host_ids):
                result.update(conn.execute(
                    sa.select(HOST_IMAGES.c.host_id, HOST_IMAGES.c.attempts)
                    .where(HOST_IMAGES.c.image_id == image_id,
                           HOST_IMAGES.c.host_id.in_(chunk))).all())
        return result

    def record_report(self, host, image_id, status, detail, now=None,
                      retry_at=None):
        """Store an agent's report.

        :param retry_at: for an answer that is no fault of the image or
            the host (the agent was busy): the image is cast to the host
            again from then on, and the attempt does not count towards
            the exponential backoff.

        :returns: the round the answer belongs to, as a dict with
            ``index`` (this answer's number in the round), or None when the
            report ends no open round.
        """
        now = now or sql.utcnow()
        values = dict(status=status, code=detail.get('code'),
                      reason=detail.get('reason'),
                      bytes=detail.get('bytes'),
                      seconds=detail.get('seconds'),
                      source=detail.get('source'),
                      delta_base=detail.get('delta_base'),
                      reported_at=now, updated_at=now)
        if detail.get('generation') is not None:
            values['generation'] = detail['generation']
        if status in states.PRESENT:
            values.update(attempts=0, next_attempt_at=None, code=None,
                          reason=None)
        elif retry_at is not None:
            values.update(next_attempt_at=retry_at, attempts=sa.case(
                (HOST_IMAGES.c.attempts > 0, HOST_IMAGES.c.attempts - 1),
                else_=0))
        with self._write() as conn:
            if image_id not in self._known_image_ids(conn):
                sql.insert_or_update(conn, IMAGES, [dict(
                    id=image_id, listed=False, requested=False,
                    first_seen=now, created_at=now)], ('id',))
                self._remember_names([image_id])
            host_id = self._host_id(conn, host, now)
            # The row is inserted unless it exists, then read locked: a
            # round, a heartbeat or a duplicate answer inserting or
            # updating it at the same time waits or is waited for (a
            # duplicate answer then finds its round already answered).
            sql.insert_or_update(conn, HOST_IMAGES, [dict(
                host_id=host_id, image_id=image_id, status=status,
                attempts=0, created_at=now)], sql.HOST_IMAGE_KEY)
            row = conn.execute(sa.select(HOST_IMAGES.c.round_id).where(
                HOST_IMAGES.c.host_id == host_id,
                HOST_IMAGES.c.image_id == image_id).with_for_update()
            ).first()
            round_id = row.round_id if row is not None else None
            if status in sql.ANSWERS:
                values['round_id'] = None
            conn.execute(HOST_IMAGES.update().where(
                HOST_IMAGES.c.host_id == host_id,
                HOST_IMAGES.c.image_id == image_id).values(**values))
            if round_id is None or status not in sql.ANSWERS:
                return None
            return self._count_answer(conn, round_id, status, now)

    def _count_answer(self, conn, round_id, status, now):
        present = 1 if status in states.PRESENT else 0
        failed = 1 if status == states.FAILED else 0
        counted = conn.execute(ROUNDS.update().where(
            ROUNDS.c.id == round_id, ROUNDS.c.ended_at.is_(None)).values(
                answered=ROUNDS.c.answered + 1,
                cached=ROUNDS.c.cached + present,
                failed=ROUNDS.c.failed + failed, updated_at=now))
        if not counted.rowcount:
            # Ended (or timed out) meanwhile. A plain SELECT would not
            # tell: under MySQL's REPEATABLE READ it could return this
            # transaction's older snapshot of the round.
            return None
        row = conn.execute(sa.select(ROUNDS).where(
            ROUNDS.c.id == round_id)).first()
        result = dict(row._mapping, index=row.answered)
        if row.answered >= row.total:
            conn.execute(ROUNDS.update().where(ROUNDS.c.id == round_id)
                         .values(ended_at=now))
            result['ended_at'] = now
        return result

    def round_activity(self):
        """Return ``{image_id: (last round's start, open rounds)}``.

        What the retirement policy (:mod:`precache.service.retirement`)
        needs: one grouped query over ``rounds``.
        """
        open_rounds = sa.func.sum(sa.case(
            (ROUNDS.c.ended_at.is_(None), 1), else_=0))
        query = (sa.select(ROUNDS.c.image_id,
                           sa.func.max(ROUNDS.c.started_at), open_rounds)
                 .group_by(ROUNDS.c.image_id))
        with self._read() as conn:
            return {image_id: (started, int(count or 0))
                    for image_id, started, count in conn.execute(query)}

    def end_rounds(self, started_before, now=None):
        """End the open rounds started before ``started_before``.

        :returns: the ended rounds as dicts, each with ``unanswered``:
            the names of the hosts that never answered.
        """
        now = now or sql.utcnow()
        with self._write() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                sa.select(ROUNDS).where(ROUNDS.c.ended_at.is_(None),
                                        ROUNDS.c.started_at <
                                        started_before))]
            for row in rows:
                row['unanswered'] = [r.name for r in conn.execute(
                    sa.select(HOSTS.c.name).select_from(HOST_IMAGES.join(
                        HOSTS, HOSTS.c.id == HOST_IMAGES.c.host_id))
                    .where(HOST_IMAGES.c.round_id == row['id']))]
                conn.execute(HOST_IMAGES.update().where(
                    HOST_IMAGES.c.round_id == row['id']).values(
                        round_id=None))
                conn.execute(ROUNDS.update().where(
                    ROUNDS.c.id == row['id']).values(ended_at=now))
                row['ended_at'] = now
        return rows


def _rows(conn, query):
    """Yield ``query``'s rows; end the query when the caller stops."""
    result = conn.execute(query)
    try:
        yield from result
    finally:
        result.close()
