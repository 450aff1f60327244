"""Column types: human-friendly in tables, raw values in JSON and YAML.

cliff's table formatter prints ``human_readable()``; the machine formatters
(``-f json``, ``-f yaml``, ``-f value``) print ``machine_readable()``, the
value exactly as precache-service returned it.
"""

import datetime

from cliff import columns
from oslo_utils import timeutils

from precache.cli import units


class SizeColumn(columns.FormattableColumn):
    """A number of bytes, shown in binary units."""

    def human_readable(self):
        return units.format_bytes(self._value)


class SecondsColumn(columns.FormattableColumn):
    """A duration in seconds, shown as ``4m05s``."""

    def human_readable(self):
        return units.format_duration(self._value)


class TimestampColumn(columns.FormattableColumn):
    """An ISO 8601 UTC timestamp, shown with its distance from now."""

    def human_readable(self):
        if not self._value:
            return ''
        when = timeutils.parse_isotime(self._value)
        now = datetime.datetime.now(datetime.timezone.utc)
        delta = (now - when).total_seconds()
        if delta >= 0:
            relative = '%s ago' % units.format_duration(delta)
        else:
            relative = 'in %s' % units.format_duration(-delta)
        return '%s (%s)' % (when.strftime('%Y-%m-%d %H:%M:%S'), relative)


class CountColumn(columns.FormattableColumn):
    """A count that matters only when not zero: 0 is shown empty."""

    def human_readable(self):
        return str(self._value) if self._value else ''


class ListColumn(columns.FormattableColumn):
    """A list of names, shown comma-separated."""

    def human_readable(self):
        if isinstance(self._value, str):
            return self._value
        return ', '.join(str(item) for item in self._value or ())


class UpColumn(columns.FormattableColumn):
    """Whether a host is alive, shown as ``up`` or ``down``."""

    def human_readable(self):
        return 'up' if self._value else 'down'


class TargetsColumn(columns.FormattableColumn):
    """An image's targets: ``all hosts`` or the host globs and labels."""

    def human_readable(self):
        targets = self._value or {}
        if not isinstance(targets, dict):
            return str(targets)
        parts = ['%s: %s' % (kind, ', '.join(targets[kind]))
                 for kind in ('hosts', 'labels') if targets.get(kind)]
        return '; '.join(parts) or 'all hosts'


def table(fields, items):
    """Return cliff Lister data: ``(headings, rows)``.

    :param fields: ``(heading, key, column class or None)`` triples.
    :param items: dicts as returned by precache-service.
    """
    return (tuple(heading for heading, _key, _kind in fields),
            [_row(fields, item) for item in items])


def record(fields, item):
    """Return cliff ShowOne data for one dict: ``(headings, values)``."""
    return (tuple(heading for heading, _key, _kind in fields),
            _row(fields, item))


def _row(fields, item):
    return tuple(kind(item.get(key)) if kind else item.get(key)
                 for _heading, key, kind in fields)
