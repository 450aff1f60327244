"""Whether a testbed round measured the links or the machine's CPU.

Every node of the testbed shares one machine's cores: once they are
busy, the agents, not the shaped links, set the pace, and the round says
nothing about the protocol. A round whose average CPU utilisation (the
whole machine, from ``/proc/stat``, whoever used it) exceeds the ceiling
is therefore marked invalid, in the table and in the JSON; other load on
the machine invalidates rounds too, which is the honest outcome.
"""

#: Default ceiling of the machine's average utilisation, in percent.
DEFAULT_CEILING = 70.0


def check(result, ceiling):
    """Mark ``result`` (a round's dict) valid or not; return it.

    Sets ``cpu_ceiling``, ``valid`` and, for an invalid round,
    ``invalid_reason``.

    :param ceiling: percent of the whole machine; None disables the check.
    """
    result['cpu_ceiling'] = ceiling
    average = result.get('cpu_average')
    if ceiling is None or average is None:
        result['valid'] = True
        return result
    result['valid'] = average <= ceiling
    if result['valid']:
        result.pop('invalid_reason', None)
    else:
        result['invalid_reason'] = (
            'CPU averaged %.0f %% of the machine, above the %.0f %% ceiling: '
            'the CPU, not the links, may have set the pace' % (
                average, ceiling))
    return result


def label(result):
    """Return '' for a valid round, 'INVALID' otherwise."""
    return '' if result.get('valid', True) else 'INVALID'


def parse(text):
    """Parse ``--cpu-ceiling``: a percentage in (0, 100], or ``none``."""
    if text.lower() == 'none':
        return None
    value = float(text)
    if not 0 < value <= 100:
        raise ValueError('%r is not a percentage in (0, 100]' % text)
    return value
