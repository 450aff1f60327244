"""precache-status: is this host ready to run this precache release?

``precache-status upgrade check`` (oslo.upgradecheck) runs, with the new
code, on each host before its daemon is restarted:

==========================  ============================================
Configuration               which files were read, and whether this is a
                            service host, an agent host or both
Database schema             (service) the schema against this code's head
Plugins                     the configured plugins import (listers,
                            fetcher, server; the agent's store)
Agent store                 (agent) the store starts as the agent's
                            would: qemu-img, nova.conf, images_type
Nova image cache aging      (agent, nova-libvirt) [agent]
                            keepalive_interval well below Nova's minimum
                            age of unused base files
==========================  ============================================

A host's role comes from its configuration: a ``[service]`` or
``[database]`` section makes a service host, an ``[agent]`` or store
section an agent host; a file with neither is checked as both. Exit
status 0 (Success), 1 (Warning), 2 (Failure), 255 (a check crashed).
"""

import logging as std_logging
import os
import shutil
import sys

from oslo_config import cfg
from oslo_log import log as logging
from oslo_upgradecheck import upgradecheck
import sqlalchemy as sa

from precache.agent.stores import nova_libvirt
from precache import cmd  # noqa: F401  (threading backend, warnings)
from precache.common import exception
from precache.common import fileutils
from precache.common import plugin
from precache import conf as precache_conf
from precache.conf import defaults as conf_defaults
from precache.db import api as db_api
from precache.db import migration
from precache.objects import signing

SERVICE = 'service'
AGENT = 'agent'
#: Sections whose presence in the configuration files names a role.
ROLE_SECTIONS = {
    SERVICE: ('service', 'database'),
    AGENT: ('agent', 'nova_libvirt', 'directory_store'),
}
ROLE_NAMES = {SERVICE: 'a service host', AGENT: 'an agent host'}
#: Nova's minimum age of an unused base file must be at least this many
#: times [agent] keepalive_interval.
KEEPALIVE_MARGIN = 2

SUCCESS = upgradecheck.Code.SUCCESS
WARNING = upgradecheck.Code.WARNING
FAILURE = upgradecheck.Code.FAILURE


def _result(code, details):
    return upgradecheck.Result(code, details)


def _skipped(roles, details):
    """A check that does not apply; says why."""
    return _result(SUCCESS, details if roles else
                   'No configuration: skipped.')


def configured_roles(conf):
    """Return the roles the configuration files give this host.

    :returns: a set of :data:`SERVICE` and :data:`AGENT`; both when the
        files name neither.
    """
    sections = set(conf.list_all_sections())
    roles = {role for role, names in ROLE_SECTIONS.items()
             if sections.intersection(names)}
    return roles or {SERVICE, AGENT}


class Checks(upgradecheck.UpgradeCommands):
    """The checks of ``precache-status upgrade check``.

    :param conf: the parsed ConfigOpts (set by :func:`main` before the
        checks run).
    """

    display_title = 'precache upgrade check'

    def __init__(self, conf=None):
        super().__init__()
        self.conf = conf

    @property
    def roles(self):
        """This host's roles; none without a configuration file."""
        if not (self.conf.config_file or self.conf.config_dir):
            return set()
        return configured_roles(self.conf)

    def _check_configuration(self):
        files = list(self.conf.config_file or ())
        dirs = list(self.conf.config_dir or ())
        if not (files or dirs):
            return _result(FAILURE, 'No configuration file was read: give '
                           'the daemon\'s file with --config-file PATH '
                           '(default: /etc/precache/precache.conf).')
        roles = self.roles
        named = set(self.conf.list_all_sections())
        if any(named.intersection(names) for names in ROLE_SECTIONS.values()):
            how = 'from its sections'
        else:
            how = ('no [service], [database] or [agent] section, so both '
                   'roles are checked')
        return _result(SUCCESS, 'Read %s; checked as %s (%s).' % (
            ', '.join(files + dirs), ' and '.join(
                ROLE_NAMES[role] for role in sorted(roles)), how))

    def _check_database(self):
        if SERVICE not in self.roles:
            return _skipped(self.roles, 'Not a service host: skipped.')
        connection = self.conf.database.connection
        if not connection:
            return _result(FAILURE, '[database] connection is empty: set '
                           'it to the service\'s database URL.')
        auto = self.conf.service.auto_db_sync
        url = sa.engine.make_url(connection)
        shown = url.render_as_string(hide_password=True)
        if (url.get_backend_name() == 'sqlite' and url.database and
                not os.path.exists(url.database)):
            return self._schema_behind(shown, None, auto)
        # One attempt: a database that is down is reported, not waited for.
        self.conf.set_override('max_retries', 0, group='database')
        try:
            db = db_api.StateDB.from_conf(self.conf)
            current = migration.current_revision(db.engine)
        except exception.ConfigurationError as exc:
            return _result(FAILURE, str(exc))
        except sa.exc.SQLAlchemyError as exc:
            return _result(FAILURE, 'Cannot read the schema revision of %s: '
                           '%s. Check [database] connection and that the '
                           'database server runs.' % (shown, exc))
        head = migration.head_revision()
        if current == head:
            return _result(SUCCESS, 'The schema of %s is at revision %s, '
                           'this release\'s.' % (shown, head))
        if current is not None and not migration.is_known(current):
            return _result(FAILURE, 'The schema of %s is at revision %s, '
                           'which this release does not know (a newer '
                           'release\'s?): run the release that made it.'
                           % (shown, current))
        return self._schema_behind(shown, current, auto)

    @staticmethod
    def _schema_behind(shown, current, auto):
        head = migration.head_revision()
        where = ('empty (no table yet)' if current is None else
                 'at revision %s' % current)
        if auto:
            return _result(SUCCESS, 'The schema of %s is %s; precache-service '
                           'upgrades it to %s when it starts ([service] '
                           'auto_db_sync). Several services on one '
                           'database: turn that off and run "precache-manage '
                           'db sync" once.' % (shown, where, head))
        return _result(FAILURE, 'The schema of %s is %s, this release needs '
                       '%s and [service] auto_db_sync is off: run '
                       '"precache-manage db sync" before starting '
                       'precache-service.' % (shown, where, head))

    def _plugins(self):
        """``(namespace, name, option)`` of every configured plugin."""
        wanted = []
        if SERVICE in self.roles:
            wanted += [('precache.listers', name, '[service] listers')
                       for name in self.conf.service.listers]
            wanted += [('precache.fetchers', self.conf.service.fetcher,
                        '[service] fetcher'),
                       ('precache.servers', self.conf.service.server,
                        '[service] server')]
        if AGENT in self.roles:
            wanted.append(('precache.stores', self.conf.agent.store,
                           '[agent] store'))
        return wanted

    def _check_plugins(self):
        if not self.roles:
            return _skipped(self.roles, '')
        problems, loaded = [], []
        for namespace, name, option in self._plugins():
            try:
                plugin.load_plugin_class(namespace, name, option)
            except exception.ConfigurationError as exc:
                problems.append(str(exc))
            else:
                loaded.append('%s %s' % (option, name))
        if problems:
            return _result(FAILURE, ' '.join(problems))
        return _result(SUCCESS, 'Loaded: %s.' % ', '.join(loaded))

    def _check_store(self):
        if AGENT not in self.roles:
            return _skipped(self.roles, 'Not an agent host: skipped.')
        name = self.conf.agent.store
        try:
            store = plugin.load_plugin('precache.stores', name, self.conf,
                                       option='[agent] store')
        except exception.ConfigurationError as exc:
            return _result(FAILURE, 'precache-agent would not start: %s'
                           % exc)
        details = 'The %s store lands images in %s.' % (name,
                                                        store.cache_dir)
        if isinstance(store, nova_libvirt.NovaLibvirtStore):
            details += (' Nova settings: instances_path %s, image cache '
                        'subdirectory %s, force_raw_images %s.' % (
                            store.instances_path, store.subdirectory_name,
                            store.force_raw_images))
            if not os.path.isdir(store.instances_path):
                return _result(WARNING, details + ' %s does not exist: '
                               'install nova-compute on this host first, or '
                               'set [nova_libvirt] instances_path.'
                               % store.instances_path)
        return _result(SUCCESS, details + ' qemu-img: %s.' %
                       shutil.which('qemu-img'))

    def _check_aging(self):
        if AGENT not in self.roles or self.conf.agent.store != 'nova-libvirt':
            return _skipped(self.roles, 'Not an agent host with the '
                            'nova-libvirt store: skipped.')
        nova_libvirt.NovaLibvirtStore.register_opts(self.conf)
        options = self.conf.nova_libvirt
        if not options.read_nova_config:
            return _result(SUCCESS, '[nova_libvirt] read_nova_config is '
                           'off: Nova\'s image cache aging not checked.')
        try:
            aging = nova_libvirt.read_nova_aging(options.nova_config_files)
        except exception.ConfigurationError as exc:
            return _result(FAILURE, str(exc))
        keepalive = self.conf.agent.keepalive_interval
        min_age = aging['remove_unused_original_minimum_age_seconds']
        if (not aging['remove_unused_base_images'] or
                aging['manager_interval'] < 0):
            return _result(SUCCESS, 'Nova never removes unused base files '
                           'here (remove_unused_base_images off or '
                           'manager_interval < 0).')
        if keepalive * KEEPALIVE_MARGIN > min_age:
            return _result(WARNING, '[agent] keepalive_interval (%d s) is '
                           'not well below Nova\'s [image_cache] '
                           'remove_unused_original_minimum_age_seconds (%d '
                           's): Nova may remove a wanted image no instance '
                           'uses yet between two touches. Set '
                           'keepalive_interval to %d s or less, or raise '
                           'Nova\'s minimum age.' % (
                               keepalive, min_age, min_age //
                               KEEPALIVE_MARGIN))
        return _result(SUCCESS, '[agent] keepalive_interval (%d s) is well '
                       'below Nova\'s remove_unused_original_minimum_age_'
                       'seconds (%d s).' % (keepalive, min_age))

    def _check_trust(self):
        roles = self.roles
        if not roles:
            return _skipped(roles, '')
        if not self.conf.signing.enabled:
            return _result(WARNING, '[signing] enabled = false: casts are '
                           'neither signed nor verified, so anyone who can '
                           'cast on the bus decides what lands on compute '
                           'hosts. Make a key pair with "precache-manage '
                           'signing generate-keys" and turn it on.')
        found = []
        try:
            if SERVICE in roles:
                found.append('signs with key %s' %
                             signing.signer_from_conf(self.conf).key_id)
            if AGENT in roles:
                found.append('trusts key(s) %s' % ', '.join(sorted(
                    signing.verifier_from_conf(self.conf).keys)))
        except exception.ConfigurationError as exc:
            return _result(FAILURE, str(exc))
        details = 'Signing: %s.' % '; '.join(found)
        if AGENT in roles and not self.conf.agent.allowed_origins:
            return _result(WARNING, details + ' [agent] allowed_origins is '
                           'empty: agents download from any URL a signed '
                           'meta names. List the service\'s web server, '
                           'Swift, tracker and seed there.')
        return _result(SUCCESS, details)

    def _check_disk_accounting(self):
        if AGENT not in self.roles or self.conf.agent.store != 'nova-libvirt':
            return _skipped(self.roles, 'Not an agent host with the '
                            'nova-libvirt store: skipped.')
        try:
            store = plugin.load_plugin('precache.stores', 'nova-libvirt',
                                       self.conf, option='[agent] store')
            reserved = nova_libvirt.reserves_disk_for_image_cache(
                self.conf.nova_libvirt.nova_config_files)
        except exception.ConfigurationError as exc:
            return _result(FAILURE, str(exc))
        shared = (_device(store.cache_dir) ==
                  _device(store.instances_path))
        if shared and not reserved:
            return _result(WARNING, '%s shares a file system with the '
                           'instances\' disks and Nova does not count it '
                           '([workarounds] reserve_disk_resource_for_image_'
                           'cache is false): the scheduler will over-commit '
                           'the disk by what precache lands. Set it to true '
                           'in nova.conf on this host.' % store.cache_dir)
        return _result(SUCCESS, 'Nova counts the image cache in its disk '
                       'resource, or the cache has a file system of its '
                       'own.')

    _upgrade_checks = (
        ('Configuration', _check_configuration),
        ('Database schema', _check_database),
        ('Plugins', _check_plugins),
        ('Signing and origins', _check_trust),
        ('Agent store', _check_store),
        ('Nova image cache aging', _check_aging),
        ('Nova disk accounting', _check_disk_accounting),
    )


def _device(path):
    """The file system (``st_dev``) of ``path`` or of its nearest parent."""
    return os.stat(fileutils.existing_ancestor(path)).st_dev


def _files_first(argv):
    """Move ``--config-file``/``--config-dir`` before the subcommand.

    oslo.config only takes them there; ``precache-status upgrade check
    --config-file PATH`` reads as naturally and is accepted too.
    """
    first, rest = [], []
    args = iter(argv)
    for arg in args:
        if arg in ('--config-file', '--config-dir'):
            first += [arg, next(args, '')]
        elif arg.startswith(('--config-file=', '--config-dir=')):
            first.append(arg)
        else:
            rest.append(arg)
    return first + rest


def main(argv=None):
    """Run ``precache-status``; returns the exit status."""
    conf = precache_conf.CONF
    logging.register_options(conf)
    conf_defaults.set_defaults()
    checks = Checks(conf)
    # A plugin that fails to load is the Plugins check's Failure, with
    # what to do; stevedore's own log line would only repeat it.
    std_logging.getLogger('stevedore').setLevel(std_logging.CRITICAL)
    try:
        return upgradecheck.main(
            conf, 'precache', checks,
            argv=_files_first(sys.argv[1:] if argv is None else argv))
    except cfg.Error as exc:
        print('precache-status: %s' % exc, file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
