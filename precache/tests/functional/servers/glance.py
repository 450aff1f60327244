"""A real Glance API for the functional tests.

Glance (from PyPI, in its own virtualenv made by
``tools/test-servers/install.sh``) runs as ``glance.wsgi.api:application``
under gunicorn, bound to 127.0.0.1, with a file store and a SQLite database
in a temporary directory.  There is no Keystone: a small paste filter
(:mod:`glance_auth_filter`) stands in for an authenticating proxy and marks
every request as coming from :attr:`GlanceServerFixture.project_id` with the
admin, member and reader roles unless the client sends its own identity
headers.
"""

import configparser
import glob
import io
import os
import shutil
import signal
import subprocess
import time
import uuid

import fixtures
import glanceclient
from keystoneauth1 import noauth
from keystoneauth1 import session as ks_session

from precache.tests.functional import servers
from precache.tests.functional.servers import glance_auth_filter

PASTE_FLAVOR = 'harness'
PIPELINE = ('cors http_proxy_to_wsgi versionnegotiation osprofiler '
            'harness-auth context rootapp')
START_TIMEOUT = 60
STOP_TIMEOUT = 15


class GlanceServerFixture(fixtures.Fixture):
    """Start a Glance API server for the duration of a test.

    :ivar endpoint: the API's URL, ``http://127.0.0.1:PORT``.
    :ivar project_id: the project requests act as by default.
    :ivar user_id: the user requests act as by default.
    :ivar base_dir: the temporary directory holding config, data and log.
    :ivar log_file: gunicorn's and Glance's combined output.
    """

    def __init__(self, project_id=None, user_id=None):
        super(GlanceServerFixture, self).__init__()
        self.project_id = project_id or uuid.uuid4().hex
        self.user_id = user_id or uuid.uuid4().hex
        self.process = None

    def _setUp(self):
        self.venv = servers.find_venv('glance')
        self.base_dir = self.useFixture(fixtures.TempDir()).path
        self.etc_dir = self._path('etc')
        self.lib_dir = self._path('pylib')
        self.log_file = self._path('glance-api.log')
        self.port = servers.free_port()
        self.endpoint = 'http://127.0.0.1:%d' % self.port

        self._install_auth_filter()
        self._write_api_conf()
        self._write_paste_ini()
        self._db_sync()
        self._start()

    # -- layout and configuration ------------------------------------------

    def _path(self, *parts):
        return os.path.join(self.base_dir, *parts)

    def _make_dir(self, name):
        path = self._path(name)
        os.makedirs(path, exist_ok=True)
        return path

    def _install_auth_filter(self):
        """Copy the auth filter where the gunicorn process can import it."""
        os.makedirs(self.lib_dir)
        src = glance_auth_filter.__file__
        shutil.copy(src, os.path.join(self.lib_dir, os.path.basename(src)))

    def _write_api_conf(self):
        os.makedirs(self.etc_dir, exist_ok=True)
        servers.write_ini(os.path.join(self.etc_dir, 'glance-api.conf'), {
            'DEFAULT': {
                'debug': 'false',
                'use_stderr': 'true',
                'enabled_backends': 'fs:file',
                'hashing_algorithm': 'sha512',
                'show_multiple_locations': 'false',
                'show_image_direct_url': 'false',
                'worker_self_reference_url': self.endpoint,
                'image_cache_dir': self._make_dir('image-cache'),
            },
            'database': {
                'connection': 'sqlite:///%s' % self._path('glance.sqlite'),
            },
            'glance_store': {'default_backend': 'fs'},
            'fs': {'filesystem_store_datadir': self._make_dir('images')},
            'os_glance_staging_store': {
                'filesystem_store_datadir': self._make_dir('staging'),
            },
            'os_glance_tasks_store': {
                'filesystem_store_datadir': self._make_dir('tasks'),
            },
            'oslo_concurrency': {'lock_path': self._make_dir('locks')},
            'paste_deploy': {
                'flavor': PASTE_FLAVOR,
                'config_file': os.path.join(self.etc_dir,
                                            'glance-api-paste.ini'),
            },
        })

    def _stock_paste_ini(self):
        """Return the path of glance-api-paste.ini shipped in the venv."""
        patterns = (
            # Where pip installs glance's data_files.
            os.path.join(self.venv, 'etc', 'glance', 'glance-api-paste.ini'),
            os.path.join(self.venv, '**', 'glance-api-paste.ini'),
        )
        for pattern in patterns:
            found = glob.glob(pattern, recursive=True)
            if found:
                return found[0]
        raise servers.ServerError(
            'glance-api-paste.ini not found in %s' % self.venv)

    def _write_paste_ini(self):
        """Derive our paste ini from the stock one, adding our flavor."""
        parser = configparser.RawConfigParser()
        parser.optionxform = str
        parser.read(self._stock_paste_ini())
        parser['composite:glance-api-%s' % PASTE_FLAVOR] = {
            'paste.composite_factory': 'glance.api:root_app_factory',
            '/': 'api',
            '/healthcheck': 'healthcheck',
        }
        parser['composite:api'][PASTE_FLAVOR] = PIPELINE
        parser['filter:harness-auth'] = {
            'paste.filter_factory': 'glance_auth_filter:filter_factory',
            'project_id': self.project_id,
            'user_id': self.user_id,
            'roles': 'admin,member,reader',
        }
        parser['app:healthcheck']['disable_by_file_path'] = self._path(
            'healthcheck_disable')
        with open(os.path.join(self.etc_dir, 'glance-api-paste.ini'),
                  'w') as f:
            parser.write(f)

    # -- processes ----------------------------------------------------------

    def _env(self):
        env = dict(os.environ)
        for name in ('PYTHONHOME', 'VIRTUAL_ENV', '__PYVENV_LAUNCHER__'):
            env.pop(name, None)
        env['PYTHONPATH'] = self.lib_dir
        env['OS_GLANCE_CONFIG_DIR'] = self.etc_dir
        return env

    def _bin(self, name):
        return os.path.join(self.venv, 'bin', name)

    def _db_sync(self):
        """Create Glance's database schema."""
        cmd = [self._bin('glance-manage'),
               '--config-file', os.path.join(self.etc_dir, 'glance-api.conf'),
               'db_sync']
        with open(self.log_file, 'ab') as log:
            rc = subprocess.call(cmd, env=self._env(), cwd=self.base_dir,
                                 stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT)
        if rc:
            raise servers.ServerError(
                'glance-manage db_sync failed (status %s):\n%s'
                % (rc, servers.log_tail(self.log_file)))

    def _start(self):
        """Start gunicorn and wait until the API answers."""
        cmd = [self._bin('gunicorn'),
               '--bind', '127.0.0.1:%d' % self.port,
               '--workers', '1',
               '--worker-class', 'gthread',
               '--threads', '8',
               '--timeout', '600',
               '--no-control-socket',
               '--pid', self._path('gunicorn.pid'),
               'glance.wsgi.api:application']
        with open(self.log_file, 'ab') as log:
            self.process = subprocess.Popen(
                cmd, env=self._env(), cwd=self.base_dir,
                stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        self.addCleanup(self._stop)
        try:
            servers.wait_for_http(self.endpoint + '/versions',
                                  timeout=START_TIMEOUT,
                                  process=self.process)
        except servers.ServerError as exc:
            raise servers.ServerError(
                'Glance API did not start: %s\n--- %s (tail) ---\n%s'
                % (exc, self.log_file, servers.log_tail(self.log_file)))

    def _signal_group(self, sig):
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def _stop(self):
        """Stop gunicorn and its workers (its whole process group)."""
        if self.process is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait()
        self.process = None

    # -- clients ------------------------------------------------------------

    def session(self, project_id=None, roles=None):
        """Return a keystoneauth1 session talking to this Glance.

        :param project_id: act as this project instead of :attr:`project_id`.
        :param roles: a list of roles instead of admin, member and reader.
        """
        headers = {}
        if project_id is not None:
            headers['X-Project-Id'] = project_id
        if roles is not None:
            headers['X-Roles'] = ','.join(roles)
        return ks_session.Session(auth=noauth.NoAuth(endpoint=self.endpoint),
                                  additional_headers=headers)

    def client(self, project_id=None, roles=None):
        """Return a glanceclient v2 client; see :meth:`session`."""
        return glanceclient.Client('2', endpoint=self.endpoint,
                                   session=self.session(project_id, roles))

    def create_image(self, data, name=None, disk_format='raw',
                     container_format='bare', tags=(), visibility='shared',
                     project_id=None, **properties):
        """Create an image, upload its data and return it as Glance sees it.

        :param data: the image's content, as bytes or a file's path.
        :param project_id: create it as (and owned by) this project.
        :param properties: extra image properties.
        :returns: the image as a dict, with size, checksum, os_hash_algo
                  and os_hash_value filled in.
        """
        client = self.client(project_id)
        image = client.images.create(
            name=name or 'image-%s' % uuid.uuid4().hex[:8],
            disk_format=disk_format, container_format=container_format,
            visibility=visibility, tags=list(tags), **properties)
        if isinstance(data, (bytes, bytearray)):
            client.images.upload(image['id'], io.BytesIO(data),
                                 image_size=len(data))
        else:
            with open(data, 'rb') as f:
                client.images.upload(image['id'], f,
                                     image_size=os.path.getsize(data))
        return self._wait_active(client, image['id'])

    @staticmethod
    def _wait_active(client, image_id, timeout=30):
        """Return the image once Glance reports it active."""
        deadline = time.monotonic() + timeout
        while True:
            image = dict(client.images.get(image_id))
            if image['status'] == 'active':
                return image
            failed = image['status'] in ('killed', 'deleted')
            if failed or time.monotonic() > deadline:
                raise servers.ServerError('image %s is %s'
                                          % (image_id, image['status']))
            time.sleep(0.1)
