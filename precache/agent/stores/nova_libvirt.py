"""The ``nova-libvirt`` store: images land in nova-compute's image cache.

It writes exactly what Nova's libvirt driver would have fetched itself
(nova/virt/libvirt/imagebackend.py ``Image.cache``, nova/virt/images.py
``fetch_to_raw``, nova/virt/libvirt/imagecache.py):

- the file is ``$instances_path/$[image_cache]subdirectory_name/<sha1>``
  where ``<sha1>`` is ``sha1(image_id)``, no extension;
- it is written while holding the lock Nova takes for that base file:
  ``nova.utils.synchronized`` is ``lockutils.synchronized_with_prefix
  ('nova-')`` used with ``external=True`` and ``lock_path =
  $instances_path/locks``, i.e. an fcntl lock on
  ``$instances_path/locks/nova-<sha1>``;
- the content passes the checks of ``fetch_to_raw`` and is raw when
  ``[DEFAULT] force_raw_images`` is true (Nova's default).

It never deletes a base file: Nova's cache manager ages out the ones no
instance uses once their mtime is old enough, and :meth:`touch` keeps the
wanted ones young.
"""

import configparser
import json
import os
import re
import string
import threading

from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import strutils

from precache.agent.stores import base
from precache.common import exception
from precache.common import fileutils
from precache.objects import image as image_mod
from precache.objects import states

LOG = logging.getLogger(__name__)

#: Prefix of Nova's lock files (nova/utils.py ``synchronized``).
NOVA_LOCK_PREFIX = 'nova-'
#: Names of original base files in Nova's cache (``sha1`` hex digests).
BASE_FILE_RE = re.compile(r'^[0-9a-f]{40}$')
#: ``[libvirt] images_type`` values whose disks Nova builds from a base
#: file in the image cache (imagebackend.Backend: Flat, Qcow2, Lvm, Ploop).
CACHE_BACKENDS = ('default', 'raw', 'flat', 'qcow2', 'lvm', 'ploop')
#: Nova's defaults for what this store reads from nova.conf.
NOVA_DEFAULTS = {'state_path': '/var/lib/nova',
                 'instances_path': '$state_path/instances',
                 'subdirectory_name': '_base',
                 'force_raw_images': 'true',
                 'images_type': 'default'}
#: Where each setting is in nova.conf, first match wins.
NOVA_CONF_LOCATIONS = {
    'instances_path': (('DEFAULT', 'instances_path'),),
    'subdirectory_name': (('image_cache', 'subdirectory_name'),
                          ('DEFAULT', 'image_cache_subdirectory_name')),
    'force_raw_images': (('DEFAULT', 'force_raw_images'),),
    'images_type': (('libvirt', 'images_type'),),
}
#: How Nova's image cache manager ages out unused base files: where each
#: setting is in nova.conf (the [DEFAULT] names are those before Train)
#: and Nova's default.
NOVA_AGING = {
    'remove_unused_base_images': (
        (('image_cache', 'remove_unused_base_images'),
         ('DEFAULT', 'remove_unused_base_images')), 'true'),
    'remove_unused_original_minimum_age_seconds': (
        (('image_cache', 'remove_unused_original_minimum_age_seconds'),
         ('DEFAULT', 'remove_unused_original_minimum_age_seconds')),
        '86400'),
    'manager_interval': (
        (('image_cache', 'manager_interval'),
         ('DEFAULT', 'image_cache_manager_interval')), '2400'),
}
#: Options of this store that nova.conf provides unless set explicitly.
FROM_NOVA = ('instances_path', 'subdirectory_name', 'force_raw_images')
# configparser must not treat nova.conf's [DEFAULT] as defaults of the
# other sections.
_NO_DEFAULT_SECTION = 'precache: no default section'


def read_nova_conf(paths):
    """Return Nova's effective settings from the nova.conf files ``paths``.

    Later files override earlier ones, as for oslo.config. ``$name``
    references to ``[DEFAULT]`` options (e.g. ``$state_path``) are
    resolved.

    :returns: a dict with the keys of :data:`NOVA_CONF_LOCATIONS`
        (``force_raw_images`` as a bool), or an empty dict when none of the
        files exists.
    :raises ConfigurationError: a file cannot be read or parsed, or a value
        cannot be resolved.
    """
    parser, found = _parse_nova_conf(paths)
    if not found:
        return {}
    variables = dict(NOVA_DEFAULTS)
    if parser.has_section('DEFAULT'):
        variables.update(parser.items('DEFAULT'))
    settings = {}
    for name, locations in NOVA_CONF_LOCATIONS.items():
        value = _first(parser, locations, NOVA_DEFAULTS[name])
        settings[name] = _substitute(value, variables, name, found)
    settings['force_raw_images'] = _nova_bool(settings['force_raw_images'],
                                              found)
    LOG.info('Read nova-compute settings from %(files)s: %(settings)s',
             {'files': ', '.join(found), 'settings': settings})
    return settings


def read_nova_aging(paths):
    """Return how Nova's image cache manager ages out unused base files.

    From the nova.conf files ``paths`` (later files win), Nova's defaults
    where they say nothing.

    :returns: a dict: ``remove_unused_base_images`` (bool),
        ``remove_unused_original_minimum_age_seconds`` and
        ``manager_interval`` (ints, seconds; a negative interval turns the
        manager off).
    :raises ConfigurationError: a file cannot be read or a value is not
        what Nova accepts.
    """
    parser, found = _parse_nova_conf(paths)
    aging = {name: _first(parser, locations, default)
             for name, (locations, default) in NOVA_AGING.items()}
    where = ', '.join(found) or 'Nova\'s defaults'
    try:
        aging['remove_unused_base_images'] = strutils.bool_from_string(
            aging['remove_unused_base_images'], strict=True)
        for name in ('remove_unused_original_minimum_age_seconds',
                     'manager_interval'):
            aging[name] = int(aging[name])
    except ValueError as exc:
        raise exception.ConfigurationError(
            reason='invalid image cache setting in %s: %s' %
            (where, exc)) from exc
    return aging


def reserves_disk_for_image_cache(paths):
    """Whether Nova counts ``_base`` in the disk it reports to placement.

    ``[workarounds] reserve_disk_resource_for_image_cache`` in the
    nova.conf files ``paths``; Nova's default is false.

    :raises ConfigurationError: the value is not a boolean.
    """
    parser, found = _parse_nova_conf(paths)
    value = _first(parser, (('workarounds',
                             'reserve_disk_resource_for_image_cache'),),
                   'false')
    try:
        return strutils.bool_from_string(value, strict=True)
    except ValueError as exc:
        raise exception.ConfigurationError(
            reason='invalid [workarounds] reserve_disk_resource_for_image_'
                   'cache in %s: %s' % (', '.join(found), exc)) from exc


def _parse_nova_conf(paths):
    """Return a parser of the nova.conf files ``paths`` and those found."""
    parser = configparser.RawConfigParser(
        default_section=_NO_DEFAULT_SECTION, strict=False, interpolation=None)
    found = [path for path in paths if _read_conf_file(parser, path)]
    return parser, found


def _first(parser, locations, default):
    """The value at the first of ``(section, option)`` that is set."""
    return next((parser.get(section, option)
                 for section, option in locations
                 if parser.has_option(section, option)), default)


def _read_conf_file(parser, path):
    if not os.path.exists(path):
        LOG.debug('%s does not exist; Nova defaults apply', path)
        return False
    try:
        with open(path, encoding='utf-8') as conf_file:
            parser.read_file(conf_file, source=path)
    except (OSError, UnicodeError, configparser.Error) as exc:
        raise exception.ConfigurationError(
            reason='cannot read nova configuration %s ([nova_libvirt] '
                   'nova_config_files): %s' % (path, exc)) from exc
    return True


def _substitute(value, variables, name, files):
    for _depth in range(5):
        if '$' not in value:
            return value
        value = string.Template(value).safe_substitute(variables)
    raise exception.ConfigurationError(
        reason='cannot resolve %r, the %s of Nova in %s; set [nova_libvirt] '
               '%s explicitly' % (value, name, ', '.join(files), name))


def _nova_bool(value, files):
    try:
        return strutils.bool_from_string(value, strict=True)
    except ValueError as exc:
        raise exception.ConfigurationError(
            reason='invalid force_raw_images %r in %s' %
            (value, ', '.join(files))) from exc


class LandedIndex(object):
    """A small JSON file mapping base file names to image ids.

    A base file's name is a one-way hash of the image id, so the id of a
    file is known only for the images this store landed or found.
    ``landed`` tells the images precache wrote (they count toward the
    cache size cap) from those Nova had fetched already.

    :param path: the JSON file; its directory is created when needed.
    """

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()

    def lookup(self, name):
        """Return ``{'image_id', 'landed'}`` for ``name``, or None."""
        return self._load().get(name)

    def record(self, name, image_id, landed):
        """Remember that ``name`` holds ``image_id``.

        An image once recorded as landed stays landed.
        """
        with self._lock:
            entries = self._load()
            old = entries.get(name) or {}
            new = {'image_id': image_id,
                   'landed': bool(landed or (old.get('landed') and
                                             old.get('image_id') == image_id))}
            if new != old:
                entries[name] = new
                self._save(entries)

    def prune(self, names):
        """Forget every file not in ``names`` (Nova aged it out)."""
        with self._lock:
            entries = self._load()
            kept = {n: e for n, e in entries.items() if n in names}
            if kept != entries:
                self._save(kept)

    def _load(self):
        try:
            with open(self.path, encoding='utf-8') as index_file:
                entries = json.load(index_file)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            LOG.warning('Ignoring unreadable index %(path)s: %(error)s',
                        {'path': self.path, 'error': exc})
            return {}
        return entries if isinstance(entries, dict) else {}

    def _save(self, entries):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with fileutils.atomic_write(self.path) as index_file:
            index_file.write(json.dumps(entries, indent=1,
                                        sort_keys=True).encode('utf-8'))


class NovaLibvirtStore(base.ImageStore):
    """Lands images in nova-compute's image cache (libvirt driver).

    :raises ConfigurationError: Nova does not build disks from its image
        cache here (``[libvirt] images_type = rbd``) or its configuration
        cannot be read.
    """

    OWNER_DEFAULT_HELP = (
        'Unset: the owner and group of the image cache directory (the nova '
        'user on a packaged host), so that a base file looks as if '
        'nova-compute had fetched it. Giving another owner needs root.')

    def __init__(self, conf):
        super().__init__(conf)
        settings = self._settings()
        self.instances_path = settings['instances_path']
        self.subdirectory_name = settings['subdirectory_name']
        self.force_raw_images = settings['force_raw_images']
        self.lock_dir = os.path.join(self.instances_path, 'locks')
        self._index = LandedIndex(os.path.join(self.options.state_dir,
                                               'nova-libvirt-index.json'))
        LOG.info('Nova image cache: %(dir)s (force_raw_images %(raw)s)',
                 {'dir': self.cache_dir, 'raw': self.force_raw_images})

    @classmethod
    def get_config_group(cls):
        return 'nova_libvirt'

    @classmethod
    def get_config_opts(cls):
        explicit = (' Set here, it overrides nova.conf; left unset, the '
                    'value comes from nova.conf when read_nova_config is '
                    'true and nova.conf sets it, else this default (Nova\'s '
                    'own).')
        return super().get_config_opts() + [
            cfg.BoolOpt('read_nova_config', default=True,
                        help='Read instances_path, [image_cache] '
                             'subdirectory_name (or [DEFAULT] '
                             'image_cache_subdirectory_name), '
                             'force_raw_images and [libvirt] images_type '
                             'from nova_config_files. Missing files mean '
                             'Nova\'s defaults.'),
            cfg.ListOpt('nova_config_files', default=['/etc/nova/nova.conf'],
                        help='nova-compute\'s configuration files, in the '
                             'order nova-compute reads them.'),
            cfg.StrOpt('instances_path', default='/var/lib/nova/instances',
                       help='Nova\'s [DEFAULT] instances_path.' + explicit),
            cfg.StrOpt('subdirectory_name', default='_base',
                       help='Nova\'s [image_cache] subdirectory_name, the '
                            'image cache below instances_path.' + explicit),
            cfg.BoolOpt('force_raw_images', default=True,
                        help='Nova\'s [DEFAULT] force_raw_images: convert '
                             'images that are not raw, as Nova would.' +
                             explicit),
            cfg.StrOpt('state_dir', default='/var/lib/precache/agent',
                       help='Directory where the store keeps its index of '
                            'which image id each base file holds (the file '
                            'names are one-way hashes).'),
        ]

    @property
    def cache_dir(self):
        return os.path.join(self.instances_path, self.subdirectory_name)

    def path(self, image):
        return os.path.join(self.cache_dir,
                            image_mod.nova_cache_name(image.id))

    def lock(self, image):
        """Take Nova's own lock for the base file of ``image``."""
        if not os.path.isdir(self.instances_path):
            raise exception.StoreFailed(
                image_id=image.id,
                reason='cannot create Nova\'s lock directory %s: No such '
                       'file or directory. Is nova-compute installed on '
                       'this host? Otherwise set [nova_libvirt] '
                       'instances_path' % self.lock_dir)
        return self.external_lock(image_mod.nova_cache_name(image.id),
                                  NOVA_LOCK_PREFIX, self.lock_dir)

    def wants_raw(self, image):
        return self.force_raw_images

    def is_cache_file(self, name):
        return bool(BASE_FILE_RE.match(name))

    def image_id_for(self, name):
        entry = self._index.lookup(name)
        return entry['image_id'] if entry else None

    def counts_toward_cap(self, name):
        entry = self._index.lookup(name)
        return bool(entry and entry.get('landed'))

    def touch(self, image):
        """Refresh the base file's mtime; remember which image it holds."""
        super().touch(image)
        self._index.record(image_mod.nova_cache_name(image.id), image.id,
                           landed=False)

    def after_land(self, image, result):
        self._index.record(image_mod.nova_cache_name(image.id), image.id,
                           landed=result == states.CACHED)

    def default_owner(self, directory):
        st = os.stat(directory)
        return st.st_uid, st.st_gid

    def inventory(self):
        entries = super().inventory()
        self._index.prune({entry['name'] for entry in entries})
        return entries

    def _settings(self):
        """Merge this store's options with nova.conf (see the help)."""
        group = self.get_config_group()
        nova = {}
        if self.options.read_nova_config:
            nova = read_nova_conf(self.options.nova_config_files)
        settings = {}
        for name in FROM_NOVA:
            location = self.conf.get_location(name, group).location
            explicit = location not in (cfg.Locations.opt_default,
                                        cfg.Locations.set_default)
            settings[name] = (self.options[name] if explicit or name not in
                              nova else nova[name])
        _check_backend(nova.get('images_type', 'default'))
        _check_subdirectory(settings['subdirectory_name'])
        return settings


def _check_backend(images_type):
    if images_type == 'rbd':
        raise exception.ConfigurationError(
            reason='nova.conf sets [libvirt] images_type = rbd: instance '
                   'disks live in Ceph and Nova clones them from Glance\'s '
                   'pool instead of building them from its local image '
                   'cache, so pre-caching into _base would only fill this '
                   'host\'s disk. Do not run precache-agent with the '
                   'nova-libvirt store on this host.')
    if images_type not in CACHE_BACKENDS:
        raise exception.ConfigurationError(
            reason='nova.conf sets an unknown [libvirt] images_type %r '
                   '(Nova knows %s)' % (images_type, ', '.join(
                       CACHE_BACKENDS + ('rbd',))))


def _check_subdirectory(name):
    if not name or os.sep in name or name in ('.', '..'):
        raise exception.ConfigurationError(
            reason='the image cache subdirectory_name %r is not a single '
                   'directory name below instances_path' % name)
