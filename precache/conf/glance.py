"""How precache talks to Glance: a keystoneauth1 session and adapter."""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

GROUP = 'glance'

glance_group = cfg.OptGroup(
    GROUP, title='Glance',
    help='Credentials and endpoint used by the glance lister, fetcher and '
         'agent source. Any keystoneauth1 auth plugin may be used '
         '(auth_type = password, v3applicationcredential, ...).')

glance_opts = [
    cfg.IntOpt('download_chunk_size',
               default=1024 * 1024, min=4096,
               help='Bytes read from Glance at a time while streaming an '
                    'image.'),
]


def register_opts(conf):
    conf.register_group(glance_group)
    conf.register_opts(glance_opts, group=glance_group)
    ks_loading.register_session_conf_options(conf, GROUP)
    ks_loading.register_auth_conf_options(conf, GROUP)
    conf.register_opts(_adapter_opts(), group=GROUP)


def _adapter_opts():
    """keystoneauth1's adapter options with Glance's defaults."""
    opts = ks_loading.get_adapter_conf_options(include_deprecated=False)
    for opt in opts:
        if opt.dest == 'service_type':
            opt.default = 'image'
        elif opt.dest == 'valid_interfaces':
            opt.default = ['internal', 'public']
    return opts


def list_opts():
    opts = (glance_opts +
            ks_loading.get_session_conf_options() +
            ks_loading.get_auth_common_conf_options() +
            ks_loading.get_auth_plugin_conf_options('password') +
            _adapter_opts())
    # Sort by name so the generated sample is stable.
    return {glance_group: sorted(_unique(opts), key=lambda o: o.name)}


def _unique(opts):
    seen = {}
    for opt in opts:
        seen.setdefault(opt.dest, opt)
    return list(seen.values())
