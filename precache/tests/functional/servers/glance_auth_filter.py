"""Paste filter standing in for Keystone in front of the test Glance API.

It plays the role of an authenticating proxy: every request gets the
headers that keystonemiddleware's auth_token would have set after
validating a token, so that Glance's ``context`` filter builds an
authenticated request context from them.  Headers already sent by the
client win, which lets a test act as another project, user or role set.

This module runs inside Glance's own virtualenv (the fixture copies it to
a directory on the gunicorn process's PYTHONPATH), so it must depend on
the standard library only and never import ``precache``.

Paste configuration::

    [filter:harness-auth]
    paste.filter_factory = glance_auth_filter:filter_factory
    project_id = <project id>
    user_id = <user id>
    roles = admin,member,reader
"""

DEFAULTS = {
    'project_id': 'precache-test-project',
    'user_id': 'precache-test-user',
    'roles': 'admin,member,reader',
}


class AuthFilter(object):
    """WSGI middleware adding identity headers a client did not send."""

    def __init__(self, app, project_id, user_id, roles):
        self.app = app
        self.headers = {
            'HTTP_X_IDENTITY_STATUS': 'Confirmed',
            'HTTP_X_PROJECT_ID': project_id,
            'HTTP_X_USER_ID': user_id,
            'HTTP_X_ROLES': roles,
        }

    def __call__(self, environ, start_response):
        for key, value in self.headers.items():
            environ.setdefault(key, value)
        return self.app(environ, start_response)


def filter_factory(global_conf, **local_conf):
    """Paste entry point: return a function wrapping an app in AuthFilter."""
    conf = dict(DEFAULTS)
    conf.update(local_conf)

    def _filter(app):
        return AuthFilter(app, conf['project_id'], conf['user_id'],
                          conf['roles'])
    return _filter
