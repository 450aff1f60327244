"""The example plugins' options, for oslo-config-generator."""

from precache_example import fetcher
from precache_example import lister


def list_opts():
    return [(plugin.get_config_group(), plugin.all_config_opts())
            for plugin in (lister.ManifestLister, fetcher.URLFetcher)]
