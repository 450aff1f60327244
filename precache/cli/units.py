"""Durations and sizes: strict parsing and human-friendly formatting."""

import argparse
import re

_DURATION_RE = re.compile(r'^(\d+)([smhdw]?)$')
_DURATION_UNITS = {'': 1, 's': 1, 'm': 60, 'h': 3600, 'd': 86400,
                   'w': 7 * 86400}
_SIZE_UNITS = ('B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB')


def parse_duration(text):
    """Parse ``30m``, ``12h``, ``7d``, ``2w``, ``45s`` or ``3600`` (seconds).

    Meant as an argparse ``type``: anything else, zero included, is an
    error that names the accepted forms.

    :returns: the duration in seconds (an int greater than zero).
    :raises: argparse.ArgumentTypeError
    """
    match = _DURATION_RE.match(text.strip().lower())
    seconds = (int(match.group(1)) * _DURATION_UNITS[match.group(2)]
               if match else 0)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(
            'invalid duration %r: use a positive whole number of seconds, '
            'or a number followed by s, m, h, d or w (e.g. 30m, 12h, 7d)'
            % text)
    return seconds


def positive_seconds(text):
    """argparse ``type`` for a poll interval: a positive number of seconds.

    :raises: argparse.ArgumentTypeError
    """
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(
            'invalid interval %r: use a positive number of seconds' % text)
    return value


def format_bytes(value):
    """Return ``value`` bytes in binary units (``1.5 GiB``); '' for None."""
    if value is None:
        return ''
    size = float(value)
    for unit in _SIZE_UNITS:
        if abs(size) < 1024 or unit == _SIZE_UNITS[-1]:
            break
        size /= 1024
    if unit == 'B':
        return '%d B' % value
    return '%.1f %s' % (size, unit)


def format_duration(seconds):
    """Return ``seconds`` as ``1h02m``, ``4m05s`` or ``12s``; '' for None."""
    if seconds is None:
        return ''
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return '%dh%02dm' % (hours, minutes)
    if minutes:
        return '%dm%02ds' % (minutes, secs)
    return '%ds' % secs
