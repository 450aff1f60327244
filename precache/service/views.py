"""Database rows as the dicts the service's RPC API returns (1.1).

``image_summary``'s ``failures``, ``failed_at``, ``retry_at``,
``retrying`` and ``delta_base`` are additions a client of an older
service does not get: read them with ``.get()``.

Timestamps become ISO 8601 strings in UTC; everything is JSON-friendly.
"""

from precache.objects import states


def isotime(value):
    """A naive UTC datetime as ``2026-11-20T10:00:00Z`` (None stays)."""
    if value is None:
        return None
    return value.strftime('%Y-%m-%dT%H:%M:%SZ')


def delta_base(meta):
    """The base id of ``meta``'s ``delta`` source, or None."""
    for source in (meta or {}).get('sources') or ():
        if source.get('method') == 'delta':
            return (source.get('base') or {}).get('id')
    return None


def image_summary(image, desired):
    """An ``images`` row as ``list_images`` returns it."""
    return {
        'image_id': image['id'],
        'name': image['name'],
        'disk_format': image['disk_format'],
        'size': image['size'],
        'listed_by': list(image['listed_by'] or []),
        'listed': bool(image['listed']),
        'requested': bool(image['requested']),
        'pinned_until': isotime(image['pinned_until']),
        'targets': image['targets'] or None,
        'generation': image['generation'],
        'desired': desired,
        'first_seen': isotime(image['first_seen']),
        'last_seen': isotime(image['last_seen']),
        'error': image['error'],
        # The service's own failures to fetch or serve it (a host's are
        # in show_image's lines).
        'failures': image.get('failures') or 0,
        # The image the last meta offers a delta against (see
        # precache.service.delta), or None.
        'delta_base': delta_base(image.get('meta')),
        'failed_at': isotime(image.get('failed_at')),
        'retry_at': isotime(image.get('retry_at')),
        'retrying': image.get('retrying_since') is not None,
    }


def host_summary(host, up):
    """A ``hosts`` row (with its counts) as ``list_hosts`` returns it."""
    return {
        'name': host['name'],
        'up': up,
        'labels': list(host['labels'] or []),
        'agent_version': host['agent_version'],
        'last_heartbeat': isotime(host['last_heartbeat']),
        'disk_total': host['disk_total'],
        'disk_free': host['disk_free'],
        'cache_bytes': host['cache_bytes'],
        'images_cached': int(host.get('images_cached') or 0),
        'images_failed': int(host.get('images_failed') or 0),
    }


def host_image(name, up, targeted, row):
    """One host's line of ``show_image``; ``row`` may be None."""
    row = row or {}
    return {
        'host': name,
        'up': up,
        'targeted': targeted,
        'status': row.get('status'),
        'reason': row.get('reason'),
        'code': row.get('code'),
        'attempts': row.get('attempts') or 0,
        'bytes': row.get('bytes'),
        'seconds': row.get('seconds'),
        'source': row.get('source'),
        'delta_base': row.get('delta_base'),
        'updated_at': isotime(row.get('updated_at')),
        'next_attempt_at': isotime(row.get('next_attempt_at')),
    }


def summarize(lines):
    """Count the live target hosts of ``show_image`` lines by outcome."""
    summary = {'live_targets': 0, 'done': 0, 'failed': 0, 'missing': 0,
               'in_progress': 0, 'waiting': 0, 'bytes': 0}
    for line in lines:
        if not (line['up'] and line['targeted']):
            continue
        summary['live_targets'] += 1
        summary['bytes'] += line['bytes'] or 0
        status = line['status']
        if status in states.PRESENT:
            summary['done'] += 1
        elif status == states.FAILED:
            summary['failed'] += 1
        elif status == states.MISSING:
            summary['missing'] += 1
        elif status in states.IN_PROGRESS:
            summary['in_progress'] += 1
        else:
            summary['waiting'] += 1
    return summary
