"""Loading precache plugins through stevedore entry points.

Every plugin type (lister, fetcher, server, store, source) derives from
:class:`Plugin`. A plugin may declare options of its own with
:meth:`Plugin.get_config_opts`; they are registered in the group named by
:meth:`Plugin.get_config_group` when the plugin is loaded, and they appear
in the generated sample configuration.
"""

from oslo_log import log as logging
import stevedore

from precache.common import exception

LOG = logging.getLogger(__name__)

NAMESPACES = (
    'precache.listers',
    'precache.fetchers',
    'precache.servers',
    'precache.stores',
    'precache.sources',
)


class Plugin(object):
    """Base class of every precache plugin.

    :param conf: the :class:`oslo_config.cfg.ConfigOpts` of the process;
        the plugin's own options are registered in it before the plugin is
        instantiated, so ``conf[self.get_config_group()]`` can be read in
        ``__init__``.
    """

    #: The plugin's entry point name, set by the loader.
    name = None
    #: The entry point namespace the plugin was loaded from.
    namespace = None

    def __init__(self, conf):
        self.conf = conf

    @classmethod
    def get_config_group(cls):
        """Return the name of the option group of this plugin's options.

        The default derives it from the class name; override to choose.
        """
        return cls.__name__.lower()

    @classmethod
    def get_config_opts(cls):
        """Return the list of :class:`oslo_config.cfg.Opt` this plugin uses.

        Override to declare options. They are registered under
        :meth:`get_config_group`.
        """
        return []

    @classmethod
    def get_interface_opts(cls):
        """Return the options every plugin of an interface shares.

        Interface base classes (not plugins) override this; the options
        are registered in each plugin's own group, after its own.
        """
        return []

    @classmethod
    def all_config_opts(cls):
        """Return the plugin's options followed by its interface's."""
        return cls.get_config_opts() + cls.get_interface_opts()

    @classmethod
    def register_opts(cls, conf):
        """Register this plugin's options in ``conf``."""
        opts = cls.all_config_opts()
        if opts:
            conf.register_opts(opts, group=cls.get_config_group())

    @property
    def options(self):
        """This plugin's option group, as read from the configuration."""
        return self.conf[self.get_config_group()]


def load_plugin(namespace, name, conf, option=None, **kwargs):
    """Load, register the options of and instantiate one plugin.

    :param namespace: entry point namespace, e.g. ``precache.fetchers``.
    :param name: the entry point name given in the configuration.
    :param conf: the ConfigOpts passed to the plugin.
    :param option: the option naming the plugin, e.g. ``[service] fetcher``;
        used in error messages so the operator knows what to change.
    :param kwargs: further keyword arguments for the plugin's constructor.
    :returns: the plugin instance.
    :raises PluginNotFound: no such entry point is installed.
    :raises PluginLoadFailed: the entry point failed to import or the plugin
        failed to initialise.
    """
    plugin_class = load_plugin_class(namespace, name, option)
    plugin_class.register_opts(conf)
    try:
        instance = plugin_class(conf, **kwargs)
    except exception.PrecacheException:
        raise
    except Exception as exc:
        LOG.exception('Plugin %s of %s failed to initialise', name, namespace)
        raise exception.PluginLoadFailed(name=name, namespace=namespace,
                                         reason=exc)
    LOG.debug('Loaded plugin %s from %s', name, namespace)
    return instance


def load_plugin_class(namespace, name, option=None):
    """Import a plugin's class without instantiating it."""
    failures = []

    def on_load_failure(manager, entrypoint, exc):
        failures.append(exc)

    try:
        manager = stevedore.DriverManager(
            namespace, name, invoke_on_load=False,
            on_load_failure_callback=on_load_failure)
    except stevedore.exception.NoMatches:
        if failures:
            raise exception.PluginLoadFailed(
                name=name, namespace=namespace, reason=failures[0])
        raise exception.PluginNotFound(
            name=name, namespace=namespace, option=option or '-',
            available=', '.join(sorted(available_plugins(namespace))) or
            'none')
    plugin_class = manager.driver
    plugin_class.name = name
    plugin_class.namespace = namespace
    return plugin_class


def available_plugins(namespace):
    """Return the entry point names installed in ``namespace``."""
    return stevedore.ExtensionManager(namespace).names()


def list_plugin_opts():
    """Yield ``(group, opts)`` of every installed plugin declaring options.

    Used by :mod:`precache.conf.opts` for the sample configuration; plugins
    failing to import are skipped with a warning.
    """
    for namespace in NAMESPACES:
        manager = stevedore.ExtensionManager(
            namespace, invoke_on_load=False,
            on_load_failure_callback=_warn_load_failure)
        for extension in sorted(manager, key=lambda e: e.name):
            opts = extension.plugin.all_config_opts()
            if opts:
                yield extension.plugin.get_config_group(), opts


def _warn_load_failure(manager, entrypoint, exc):
    LOG.warning('Plugin %s of %s cannot be imported: %s',
                entrypoint.name, manager.namespace, exc)
