"""The ``precache`` console script: a cliff application.

Commands are entry points in the ``precache.cli`` namespace. Global
options: ``--config-file``/``--config-dir`` (the daemons' configuration,
``/etc/precache/precache.conf`` by default) and ``--rpc-timeout``.
"""

import logging
import sys

from cliff import app
from cliff import commandmanager

from precache.cli import client as cli_client
from precache.cli import units
from precache import version

#: Libraries whose INFO messages (connections and such) are noise on a
#: terminal; shown from ``-vv`` on.
QUIET_LOGGERS = ('oslo_messaging', 'oslo.messaging', 'kombu', 'amqp',
                 'stevedore')


class PrecacheApp(app.App):
    """The ``precache`` command.

    :param connect: a callable taking the parsed global options and
        returning a client with ``call(method, **kwargs)`` and
        ``close()``; :func:`precache.cli.client.connect` by default.
        It runs once, when the first command needs the service.
    """

    NAME = 'precache'

    def __init__(self, connect=cli_client.connect, **kwargs):
        self._connect = connect
        self._client = None
        super().__init__(
            description='Follow and steer the pre-caching of golden images '
                        'on the compute hosts (talks to precache-service '
                        'over RPC).',
            version=version.version_string(),
            command_manager=commandmanager.CommandManager('precache.cli'),
            deferred_help=True,
            **kwargs)

    def build_option_parser(self, description, version,
                            argparse_kwargs=None):
        parser = super().build_option_parser(description, version,
                                             argparse_kwargs)
        parser.add_argument(
            '--config-file', action='append', default=[], metavar='PATH',
            help='Configuration file with transport_url and [rpc] '
                 'service_topic (repeatable). Default: precache.conf in '
                 'oslo.config\'s usual places, /etc/precache/ among them.')
        parser.add_argument(
            '--config-dir', action='append', default=[], metavar='DIR',
            help='Directory of *.conf files read after --config-file '
                 '(repeatable).')
        parser.add_argument(
            '--rpc-timeout', type=units.positive_seconds, metavar='SECONDS',
            help='Seconds to wait for precache-service to answer each '
                 'call. Default: the rpc_response_timeout option.')
        return parser

    def configure_logging(self):
        super().configure_logging()
        if self.options.verbose_level < 2:
            for name in QUIET_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)

    @property
    def client(self):
        """The connection to precache-service, made on first use."""
        if self._client is None:
            self._client = self._connect(self.options)
        return self._client

    def clean_up(self, cmd, result, err):
        if self._client is not None:
            self._client.close()
            self._client = None


def main(argv=None):
    """Run ``precache``; returns the exit status."""
    return PrecacheApp().run(sys.argv[1:] if argv is None else argv)


if __name__ == '__main__':
    sys.exit(main())
