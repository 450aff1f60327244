"""Swift credentials and connections, shared by the service's plugins.

The ``swift`` fetcher (reads Glance's objects) and the ``swift`` image
server (writes artifacts) both talk to Swift with their own credentials
in their own option group: Keystone v3 through a keystoneauth1 session,
or v1 auth middleware such as tempauth. :func:`auth_opts` returns those
options and :class:`SwiftConnector` makes the connections.
"""

from keystoneauth1.identity import v3 as ks_identity
from keystoneauth1 import session as ks_session
from oslo_config import cfg
import swiftclient


def auth_opts(project_help):
    """Return fresh copies of the Swift authentication options.

    :param project_help: the help text of ``project_name``: whose
        account the plugin reads or writes.
    """
    return [
        cfg.URIOpt('auth_url',
                   help='Authentication URL: Keystone\'s (e.g. '
                        'https://keystone:5000/v3) for auth_version 3, '
                        'or the v1 auth URL of the proxy (e.g. '
                        'http://swift:8080/auth/v1.0 with tempauth).'),
        cfg.StrOpt('auth_version',
                   default='3',
                   choices=(('1', 'v1 auth middleware (tempauth)'),
                            ('3', 'Keystone v3')),
                   help='Swift auth version: 3 for Keystone, 1 '
                        'for v1 auth middleware such as tempauth.'),
        cfg.StrOpt('user',
                   help='User name; with auth_version 1, as the '
                        'middleware expects it (tempauth: '
                        'account:user).'),
        cfg.StrOpt('key',
                   secret=True,
                   help='Password (Keystone) or key (v1) of user.'),
        cfg.StrOpt('project_name', help=project_help),
        cfg.StrOpt('user_domain_name',
                   default='Default',
                   help='Keystone domain of user (auth_version 3).'),
        cfg.StrOpt('project_domain_name',
                   default='Default',
                   help='Keystone domain of project_name '
                        '(auth_version 3).'),
        cfg.StrOpt('region_name',
                   help='Region of the Swift endpoint in the Keystone '
                        'catalog, when there are several.'),
        cfg.StrOpt('interface',
                   default='internal',
                   choices=(('public', 'the public endpoint'),
                            ('internal', 'the internal endpoint'),
                            ('admin', 'the admin endpoint')),
                   help='Which Swift endpoint of the Keystone catalog '
                        'to use (auth_version 3).'),
        cfg.URIOpt('storage_url',
                   help='Use this storage URL (e.g. '
                        'https://swift:8080/v1/AUTH_<project id>) '
                        'instead of the one auth returns.'),
        cfg.StrOpt('cafile',
                   help='CA bundle to verify Swift\'s and Keystone\'s '
                        'TLS certificates with.'),
        cfg.BoolOpt('insecure',
                    default=False,
                    help='Do not verify TLS certificates (tests only).'),
        cfg.IntOpt('retries',
                   default=3, min=0,
                   help='Times a failed request is retried, resuming a '
                        'cut download where it stopped.'),
        cfg.FloatOpt('timeout',
                     default=60, min=1,
                     help='Seconds to wait for Swift to answer.'),
    ]


class SwiftConnector(object):
    """Makes Swift connections from a plugin's options.

    :param options: the plugin's option group (the options of
        :func:`auth_opts`).
    """

    def __init__(self, options):
        self.options = options
        self._session = None

    def connection(self):
        """Return a new :class:`swiftclient.client.Connection`.

        A connection is not thread safe, and the service handles several
        images at once: each use gets its own. With Keystone they share
        one keystoneauth1 session, hence one token.
        """
        opts = self.options
        os_options = {'region_name': opts.region_name,
                      'endpoint_type': opts.interface}
        if opts.auth_version == '1':
            auth = dict(authurl=opts.auth_url, user=opts.user, key=opts.key,
                        auth_version='1')
        else:
            auth = dict(session=self._keystone_session())
        return swiftclient.Connection(
            os_options={k: v for k, v in os_options.items() if v},
            preauthurl=opts.storage_url, retries=opts.retries,
            timeout=opts.timeout, cacert=opts.cafile,
            insecure=opts.insecure, **auth)

    def _keystone_session(self):
        """Return the keystoneauth1 session for auth_version 3."""
        if self._session is None:
            opts = self.options
            auth = ks_identity.Password(
                auth_url=opts.auth_url, username=opts.user,
                password=opts.key, project_name=opts.project_name,
                user_domain_name=opts.user_domain_name,
                project_domain_name=opts.project_domain_name)
            verify = False if opts.insecure else (opts.cafile or True)
            self._session = ks_session.Session(auth=auth, verify=verify,
                                               timeout=opts.timeout)
        return self._session
