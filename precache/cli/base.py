"""What every ``precache`` command shares: the service client, one-line
errors with their exit codes, and table-only notes."""

from precache.cli import errors


class ServiceCommand(object):
    """Mixin for cliff commands that talk to precache-service.

    Put it before cliff's base class (``class X(ServiceCommand,
    lister.Lister)``). A :class:`~precache.cli.errors.CLIError` raised by
    ``take_action`` is printed as ``precache: <message>`` on stderr and
    becomes the exit status; otherwise the status is ``exit_code``, which
    ``take_action`` may set.
    """

    exit_code = 0
    notes = ()

    @property
    def client(self):
        """The App's :class:`precache.cli.client.ServiceClient`."""
        return self.app.client

    def run(self, parsed_args):
        self.notes = []
        try:
            status = super().run(parsed_args)
        except errors.CLIError as exc:
            self.app.stderr.write('precache: %s\n' % exc)
            return exc.exit_code
        for text in self.notes:
            self.app.stdout.write(text + '\n')
        return status or self.exit_code

    @staticmethod
    def is_table(parsed_args):
        """Whether the output is a table for people (not JSON and such)."""
        return parsed_args.formatter == 'table'

    def note(self, parsed_args, text):
        """Print ``text`` under the table; machine formats stay pure."""
        if self.is_table(parsed_args):
            self.notes.append(text)
