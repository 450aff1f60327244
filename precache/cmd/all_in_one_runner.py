"""The all-in-one run: the whole precache path in one process.

No broker (oslo.messaging's ``fake:/`` transport), no Glance, state in an
sqlite file: images are
listed from a directory (a sample qcow2 image made with qemu-img by
default), fetched, compressed and served by the built-in HTTP server, fanned
out to several agents with their own Nova-style instance directories, then
downloaded, verified, converted to raw and landed in each ``_base``.
Casts are signed as in production, with a key pair kept in
``<work_dir>/signing`` (made on the first run).
"""

import os
import subprocess
import threading
import time
import uuid

from oslo_config import cfg
from oslo_log import log as logging
import oslo_messaging as messaging

from precache.agent import manager as agent_manager
from precache.agent.stores import images as store_images
from precache.cmd import all_in_one_view
from precache.common import plugin
from precache.common import rpc
from precache.conf import agent as agent_conf
from precache.db import api as db_api
from precache.objects import signing
from precache.objects import states
from precache.service import factory
from precache.service import rpcapi as service_rpcapi

LOG = logging.getLogger(__name__)

SAMPLE_IMAGE_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, 'precache:sample'))
MiB = 1024 * 1024


def make_sample_image(directory, data_mib=48, virtual_mib=256):
    """Create a qcow2 image with text, random bytes and zero runs.

    :returns: the image id (the file name in ``directory``).
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, SAMPLE_IMAGE_ID)
    if os.path.exists(path):
        return SAMPLE_IMAGE_ID
    raw = os.path.join(directory, '.sample.raw')
    text = b''.join(b'%08d precache sample log line: all is well\n' % i
                    for i in range(MiB // 48))
    with open(raw, 'wb') as f:
        for block in range(data_mib // 4):
            f.write(text[:2 * MiB] + os.urandom(MiB) + bytes(MiB))
        f.truncate(virtual_mib * MiB)
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2',
                    raw, path], check=True)
    os.unlink(raw)
    return SAMPLE_IMAGE_ID


class AllInOne(object):
    """Runs a service and ``hosts`` agents in this process.

    :param conf: the global ConfigOpts (its values are overridden).
    :param work_dir: where images, staging, web root and hosts live.
    :param hosts: number of agents.
    :param images_dir: directory of images; a sample image is made when
        None.
    :param view: what prints the run (default: a
        :class:`~precache.cmd.all_in_one_view.ProgressView` on stdout).
    """

    def __init__(self, conf, work_dir, hosts=3, images_dir=None,
                 compression='zstd', timeout=300, view=None):
        self.conf = conf
        self.work_dir = os.path.abspath(work_dir)
        self.hosts = ['compute-%d' % i for i in range(1, hosts + 1)]
        self.images_dir = images_dir
        self.compression = compression
        self.timeout = timeout
        self.reports = {}
        self._reported = threading.Condition()
        self._servers = []
        self.view = view or all_in_one_view.ProgressView(self.work_dir)

    def configure(self):
        sample = not self.images_dir
        if sample:
            self.images_dir = os.path.join(self.work_dir, 'images')
            make_sample_image(self.images_dir)
        self.view.images(self.images_dir, sorted(
            name for name in os.listdir(self.images_dir)
            if not name.startswith('.')), sample)
        conf = self.conf
        conf.set_override('host', 'precache-service')
        private_key, public_key = self._signing_keys()
        conf.set_override('enabled', True, group='signing')
        conf.set_override('private_key_file', private_key, group='signing')
        conf.set_override('public_key_files', [public_key], group='signing')
        conf.set_override('listers', ['directory'], group='service')
        conf.set_override('fetcher', 'file', group='service')
        conf.set_override('server', 'http', group='service')
        conf.set_override('staging_dir',
                          os.path.join(self.work_dir, 'staging'),
                          group='service')
        for name, group, option, value in (
                ('directory', 'listers', 'path', self.images_dir),
                ('file', 'fetchers', 'image_dir', self.images_dir),
                ('http', 'servers', 'document_root',
                 os.path.join(self.work_dir, 'www')),
                ('http', 'servers', 'bind_host', '127.0.0.1'),
                ('http', 'servers', 'bind_port', 0),
                ('http', 'servers', 'compression', self.compression)):
            cls = plugin.load_plugin_class('precache.' + group, name)
            cls.register_opts(conf)
            conf.set_override(option, value, group=cls.get_config_group())

    def _signing_keys(self):
        """The key pair of ``<work_dir>/signing``, made when missing."""
        directory = os.path.join(self.work_dir, 'signing')
        private_key = os.path.join(directory, 'private.pem')
        public_key = os.path.join(directory, 'public.pem')
        if not os.path.exists(private_key):
            os.makedirs(directory, mode=0o700, exist_ok=True)
            if os.path.exists(public_key):
                os.unlink(public_key)
            LOG.info('Made signing key %s', signing.generate_key_pair(
                private_key, public_key))
        return private_key, public_key

    def run(self):
        """Run one distribution round and print what each host did.

        :returns: 0 when every host cached every image, 1 otherwise.
        :raises ToolMissing: qemu-img is not installed.
        """
        store_images.require_qemu_img()
        self.view.started(self.hosts)
        self.configure()
        rpc.init(self.conf, url='fake:/')
        try:
            parts = self._build_service()
            state = parts.state
            self._start_service_endpoint(parts.manager)
            agents = [self._start_agent(host) for host in self.hosts]
            for agent in agents:
                agent.heartbeat()
            self._wait_for_hosts(state)
            self.view.step('service and %d agents up (oslo.messaging fake:/ '
                           'transport, state in precache.sqlite)'
                           % len(agents))
            pipeline = parts.pipeline
            pipeline.start()
            try:
                self.view.step('pipeline: list, fetch, compress (%s), '
                               'serve, fan out' % self.compression)
                started = time.monotonic()
                outcomes = pipeline.run(rpc.get_context())
                for outcome in outcomes:
                    self.view.served(outcome)
                expected = {(host, o.image_id) for o in outcomes
                            if o.distributed for host in self.hosts}
                self.view.waiting(expected)
                self._wait_for(expected)
                elapsed = time.monotonic() - started
                status = state.get_status(rpc.get_context())
            finally:
                pipeline.stop()
        finally:
            self._stop_servers()
            rpc.cleanup()
        ok = self.view.result(outcomes, expected, self.reports, status,
                              elapsed)
        self.view.next_steps()
        return 0 if ok else 1

    def _build_service(self):
        """The service's parts, its state in <work_dir>/precache.sqlite."""
        db = db_api.StateDB('sqlite:///%s' % os.path.join(
            self.work_dir, 'precache.sqlite'))
        db.sync()
        return factory.build(self.conf, db)

    def _wait_for_hosts(self, state):
        """Wait until the service has every agent's first heartbeat."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            up_since = state.reconciler.up_since(db_api.utcnow())
            if len(state.db.live_hosts(up_since)) >= len(self.hosts):
                return
            time.sleep(0.02)

    def _start_service_endpoint(self, endpoint):
        endpoint.add_listener(self._on_message)
        self._serve(self.conf.rpc.service_topic, self.conf.host, endpoint)

    def _start_agent(self, host):
        store = self._make_store(host)
        store.recover()
        agent = agent_manager.AgentManager(
            self.conf, service_rpcapi.ServiceAPI(self.conf), store=store,
            host=host)
        self._serve(self.conf.rpc.agent_topic, host, agent)
        return agent

    def _make_store(self, host):
        """A nova-libvirt store in ``<work_dir>/hosts/<host>/instances``.

        Each agent gets its own ConfigOpts so that several stores with
        different paths live in one process.
        """
        store_conf = cfg.ConfigOpts()
        agent_conf.register_opts(store_conf)
        store_conf([], project='precache', default_config_files=[])
        store_conf.set_override('disk_reserve_mb', 0, group='agent')
        cls = plugin.load_plugin_class('precache.stores', 'nova-libvirt')
        cls.register_opts(store_conf)
        group = cls.get_config_group()
        host_dir = os.path.join(self.work_dir, 'hosts', host)
        os.makedirs(os.path.join(host_dir, 'instances'), exist_ok=True)
        store_conf.set_override('read_nova_config', False, group=group)
        store_conf.set_override('instances_path',
                                os.path.join(host_dir, 'instances'),
                                group=group)
        store_conf.set_override('state_dir', os.path.join(host_dir, 'state'),
                                group=group)
        return plugin.load_plugin('precache.stores', 'nova-libvirt',
                                  store_conf)

    def _serve(self, topic, server, endpoint):
        target = messaging.Target(topic=topic, server=server)
        rpc_server = rpc.get_server(target, [endpoint])
        rpc_server.start()
        self._servers.append(rpc_server)

    def _stop_servers(self):
        for rpc_server in self._servers:
            rpc_server.stop()
        for rpc_server in self._servers:
            rpc_server.wait()

    def _on_message(self, kind, host, payload):
        if kind != 'report' or payload['status'] == states.DOWNLOADING:
            return
        with self._reported:
            self.reports[(host, payload['image_id'])] = payload
            self._reported.notify_all()
        self.view.report(host, payload['image_id'], payload)

    def _wait_for(self, expected):
        deadline = time.monotonic() + self.timeout
        with self._reported:
            while not expected.issubset(self.reports):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._reported.wait(left)
