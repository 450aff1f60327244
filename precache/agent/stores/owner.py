"""Who owns the files a store lands: ``file_owner`` and ``file_group``."""

import grp
import pwd

from precache.common import exception

#: ``(uid, gid)`` meaning "leave the owner and group as they are".
UNCHANGED = (-1, -1)


def resolve(group, owner, file_group):
    """Return ``(uid, gid)`` for the options, or None when both are unset.

    :param group: the store's option group, for error messages.
    :param owner: ``file_owner``: a user name or uid, or empty.
    :param file_group: ``file_group``: a group name or gid, or empty.
    :raises ConfigurationError: the user or group does not exist here.
    """
    if not owner and not file_group:
        return None
    uid, gid = UNCHANGED
    if owner:
        entry = _lookup(group, 'file_owner', owner, pwd.getpwuid,
                        pwd.getpwnam)
        uid, gid = entry.pw_uid, entry.pw_gid
    if file_group:
        gid = _lookup(group, 'file_group', file_group, grp.getgrgid,
                      grp.getgrnam).gr_gid
    return uid, gid


def _lookup(group, option, value, by_id, by_name):
    try:
        return by_id(int(value)) if value.isdigit() else by_name(value)
    except KeyError as exc:
        raise exception.ConfigurationError(
            reason='[%s] %s: %s does not exist on this host' %
            (group, option, value)) from exc
