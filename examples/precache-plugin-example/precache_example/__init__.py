"""An example precache plugin package: a lister and a fetcher."""
