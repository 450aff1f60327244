"""The installed version of precache, as pbr computes it."""

import pbr.version

version_info = pbr.version.VersionInfo('precache')


def version_string():
    """Return the version string, e.g. ``0.1.0``."""
    return version_info.version_string()
