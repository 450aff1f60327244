"""BitTorrent parts shared by the ``bittorrent`` server and source.

:mod:`precache.torrent.session` wraps one libtorrent session with the
settings precache needs (no DHT, LSD, UPnP or NAT-PMP; TCP only by
default) and turns its alerts into plain events;
:mod:`precache.torrent.metainfo` makes and reads torrents and peer
addresses.
"""
