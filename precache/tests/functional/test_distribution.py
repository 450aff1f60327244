"""The whole path on real parts: RabbitMQ, HTTP, qemu-img, agent processes.

The service's pipeline runs in this process (directory lister, file
fetcher, http server with its built-in web server); real
``precache-agent`` processes with Nova-style stores receive its fanout
over a real RabbitMQ, download, verify, convert and land the images, and
report back.
"""

import os
import subprocess
import time

from oslo_concurrency import lockutils
from oslo_config import cfg
from oslo_messaging import opts as messaging_opts

from precache.agent import rpcapi as agent_rpcapi
from precache.common import plugin
from precache.common import rpc
from precache.common import verify
from precache.objects import image as image_mod
from precache.objects import meta as meta_mod
from precache.tests.fixtures import control_plane
from precache.tests.fixtures import distributor
from precache.tests.fixtures import images
from precache.tests.fixtures import rabbitmq
from precache.tests.functional import base

MiB = 1024 * 1024


#: Kept here for the tests that use it by this name.
make_qcow2 = images.make_qcow2


class BrokerTestCase(base.FunctionalTestCase):
    """A private RabbitMQ for the class; unique topics per test.

    With ``broker_tls`` the broker listens for TLS only, and this process
    connects with ``[oslo_messaging_rabbit] ssl`` and the broker's CA
    (:meth:`broker_tls_options`, for processes too).
    """

    broker_tls = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.broker = cls.use_class_fixture(
            rabbitmq.RabbitMQFixture(tls=cls.broker_tls))

    def broker_tls_options(self):
        """``[oslo_messaging_rabbit]`` options for the class's broker."""
        if not self.broker.ca_file:
            return {}
        return {'ssl': True, 'ssl_ca_file': self.broker.ca_file}

    def setUp(self):
        super().setUp()
        tls_options = self.broker_tls_options()
        if tls_options:
            # Before MessagingFixture creates the transport.
            for group, opts in messaging_opts.list_opts():
                if group == 'oslo_messaging_rabbit':
                    cfg.CONF.register_opts(opts, group=group)
            self.flags(group='oslo_messaging_rabbit', **tls_options)
        self.messaging = self.useFixture(
            control_plane.MessagingFixture(self.broker.transport_url))


class DistributionTestCase(BrokerTestCase):
    """A service endpoint and images per test."""

    def setUp(self):
        super().setUp()
        self.endpoint = self.useFixture(
            control_plane.ServiceEndpointFixture(self.conf))
        self.images_dir = os.path.join(self.tempdir, 'images')
        os.makedirs(self.images_dir)
        self.configure_service()

    def configure_service(self):
        self.flags(group='service', listers=['directory'], fetcher='file',
                   server='http')
        for namespace, name, values in (
                ('precache.listers', 'directory',
                 {'path': self.images_dir}),
                ('precache.fetchers', 'file',
                 {'image_dir': self.images_dir}),
                ('precache.servers', 'http',
                 {'document_root': os.path.join(self.tempdir, 'www'),
                  'bind_host': '127.0.0.1', 'bind_port': 0})):
            cls = plugin.load_plugin_class(namespace, name)
            self.register_plugin_opts(cls)
            self.flags(group=cls.get_config_group(), **values)

    def start_pipeline(self):
        pipeline = distributor.fanout_pipeline(
            self.conf, self.tempdir, agent_rpcapi.AgentAPI(self.conf))
        pipeline.start()
        self.addCleanup(pipeline.stop)
        return pipeline

    def start_agents(self, count, prefix='agent', options=None):
        agents = []
        for i in range(1, count + 1):
            agents.append(self.useFixture(control_plane.AgentProcessFixture(
                self.messaging, '%s-%d' % (prefix, i), self.tempdir,
                options=options)))
        for agent in agents:
            self.endpoint.wait_for_heartbeat(agent.host)
        return agents

    def assertLanded(self, agent, image_id, expected_raw):
        path = os.path.join(agent.base_path,
                            image_mod.nova_cache_name(image_id))
        self.assertTrue(os.path.exists(path), agent.log_tail())
        self.assertEqual(verify.file_digest(expected_raw),
                         verify.file_digest(path))
        self.assertEqual(0o644, os.stat(path).st_mode & 0o777)
        self.assertNoLeftovers(agent)
        return path

    def assertNothingLanded(self, agent, image_id):
        path = os.path.join(agent.base_path,
                            image_mod.nova_cache_name(image_id))
        self.assertFalse(os.path.exists(path))
        self.assertNoLeftovers(agent)

    def assertNoLeftovers(self, agent):
        if os.path.isdir(agent.base_path):
            names = os.listdir(agent.base_path)
            self.assertEqual([], [n for n in names if n.startswith('.')])


class FanoutTest(DistributionTestCase):

    def test_fanout_lands_the_image_on_every_agent(self):
        agents = self.start_agents(3)
        image_id = '6f1d7e3a-0c55-4d0a-9a57-3a2b2f9c1e01'
        qcow2, raw = make_qcow2(self.images_dir, image_id)
        pipeline = self.start_pipeline()

        outcomes = pipeline.run(rpc.get_context())

        self.assertEqual([image_id], [o.image_id for o in outcomes])
        self.assertTrue(outcomes[0].distributed, outcomes[0].error)
        sources = outcomes[0].meta['sources']
        self.assertEqual('http', sources[0]['method'])
        self.assertEqual('zstd', sources[0]['compression'])
        self.assertEqual(verify.file_digest(qcow2),
                         outcomes[0].meta['image']['os_hash_value'])
        self.assertEqual('qcow2', outcomes[0].meta['image']['disk_format'])
        paths = []
        for agent in agents:
            report = self.endpoint.report_for(agent.host, image_id)
            self.assertEqual('cached', report['status'], report)
            self.assertEqual('http', report['source'])
            paths.append(self.assertLanded(agent, image_id, raw))

        # The next run finds the image everywhere: "existing", and the
        # files' mtime is refreshed so Nova's cache manager keeps them.
        for path in paths:
            os.utime(path, (1000, 1000))
        pipeline.run(rpc.get_context())
        for agent, path in zip(agents, paths):
            report = self.endpoint.report_for(agent.host, image_id, after=1)
            self.assertEqual('existing', report['status'], report)
            self.assertGreater(os.stat(path).st_mtime, time.time() - 600)


class OneImageTestCase(DistributionTestCase):
    """One qcow2 image served by the test's own http ImageServer.

    :meth:`cast` sends a targeted cast of it (or of a variant) to an
    agent.
    """

    image_id = '0b9e3c1a-7d6f-4e2b-8c3a-5f4e3d2c1b0a'
    #: MiB of incompressible data in the image.
    data_mib = 6

    def setUp(self):
        super().setUp()
        self.qcow2, self.raw = make_qcow2(self.images_dir, self.image_id,
                                          data_mib=self.data_mib)
        self.agent_api = agent_rpcapi.AgentAPI(self.conf)
        server_cls = plugin.load_plugin_class('precache.servers', 'http')
        self.server = plugin.load_plugin('precache.servers', 'http',
                                         self.conf)
        self.assertIs(server_cls, type(self.server))
        self.server.start()
        self.addCleanup(self.server.stop)
        self.lister = plugin.load_plugin('precache.listers', 'directory',
                                         self.conf)
        self.record = self.lister.list()[0]

    def cast(self, agent, record=None, sources=None, path=None):
        record = record or self.record
        if sources is None:
            sources = self.server.serve(record, path or self.qcow2)
        meta = self.sign(meta_mod.build(record, sources,
                                        epoch=base.EPOCH))
        self.agent_api.cache(rpc.get_context(), record.id, meta,
                             host=agent.host)
        return meta


class AgentFaultsTest(OneImageTestCase):
    """Bad input gets a clear reported reason and leaves nothing."""

    def test_wrong_hash_is_refused(self):
        agent, = self.start_agents(1)
        record = image_mod.ImageRecord.from_dict(self.record.to_dict())
        record.os_hash_value = 'ab' * 64
        self.cast(agent, record)
        report = self.endpoint.report_for(agent.host, self.image_id)
        self.assertEqual('failed', report['status'])
        self.assertIn('sha512 of the downloaded bytes', report['reason'])
        self.assertNothingLanded(agent, self.image_id)

    def test_truncated_transfer_is_refused(self):
        agent, = self.start_agents(1)
        source, = self.server.serve(self.record, self.qcow2)
        artifact = self._artifact_path(source)
        # The origin now has half of the artifact: every transfer of it,
        # resumed or not, ends short.
        with open(artifact, 'r+b') as f:
            f.truncate(source['size'] // 2)
        self.cast(agent, sources=[source])
        report = self.endpoint.report_for(agent.host, self.image_id)
        self.assertEqual('failed', report['status'])
        self.assertTrue(report['reason'], report)
        self.assertNothingLanded(agent, self.image_id)

    def test_backing_file_qcow2_is_refused(self):
        agent, = self.start_agents(1)
        base_image, _ = make_qcow2(self.tempdir, 'backing-base')
        evil_id = '5a5a5a5a-1111-2222-3333-444444444444'
        make_qcow2(self.images_dir, evil_id, backing=base_image)
        lister = plugin.load_plugin('precache.listers', 'directory',
                                    self.conf)
        record = [r for r in lister.list() if r.id == evil_id][0]
        self.cast(agent, record,
                  path=os.path.join(self.images_dir, evil_id))
        report = self.endpoint.report_for(agent.host, evil_id)
        self.assertEqual('failed', report['status'])
        self.assertEqual('unsafe_image', report['code'], report)
        self.assertIn('backing', report['reason'])
        self.assertNothingLanded(agent, evil_id)

    def test_full_disk_is_refused_before_download(self):
        mount_point = os.path.join(self.tempdir, 'small')
        os.makedirs(mount_point)
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=16m', 'tmpfs',
                        mount_point], check=True)
        self.addCleanup(subprocess.run, ['umount', '-l', mount_point])
        agent = self.useFixture(control_plane.AgentProcessFixture(
            self.messaging, 'small-disk', self.tempdir, options={
                'nova_libvirt': {'instances_path': mount_point}}))
        self.endpoint.wait_for_heartbeat(agent.host)
        self.cast(agent)
        report = self.endpoint.report_for(agent.host, self.image_id)
        self.assertEqual('failed', report['status'])
        self.assertEqual('no_space', report['code'], report)
        self.assertIn('Not enough disk space', report['reason'])
        self.assertNothingLanded(agent, self.image_id)

    def test_dead_first_proxy_falls_back(self):
        from precache.tests import fixtures as servers
        dead_proxy = 'http://127.0.0.1:%d' % servers.free_port()
        agent, = self.start_agents(1, options={
            'agent': {'proxies': [dead_proxy]}})
        self.cast(agent)
        report = self.endpoint.report_for(agent.host, self.image_id)
        self.assertEqual('cached', report['status'], report)
        self.assertLanded(agent, self.image_id, self.raw)

    def test_held_nova_lock_makes_the_agent_wait(self):
        agent, = self.start_agents(1)
        lock_path = os.path.join(agent.instances_path, 'locks')
        name = image_mod.nova_cache_name(self.image_id)
        # Taken the way Nova's libvirt driver takes it while it fetches.
        with lockutils.lock(name, lock_file_prefix='nova-', external=True,
                            lock_path=lock_path):
            self.cast(agent)
            time.sleep(3)
            self.assertEqual(
                0, self.endpoint.count_reports(agent.host, self.image_id))
            self.assertNothingLanded(agent, self.image_id)
        report = self.endpoint.report_for(agent.host, self.image_id)
        self.assertEqual('cached', report['status'], report)
        self.assertLanded(agent, self.image_id, self.raw)

    def test_malformed_message_is_reported(self):
        agent, = self.start_agents(1)
        self.agent_api.client.prepare(server=agent.host).cast(
            rpc.get_context(), 'cache', image_id=self.image_id,
            # Signed: the service's own (buggy) meta, not a forgery.
            meta=self.sign({'version': '1.0',
                            'image': {'id': self.image_id}}))
        report = self.endpoint.report_for(agent.host, self.image_id)
        self.assertEqual('failed', report['status'])
        self.assertEqual('invalid_meta', report['code'])
        self.assertIn("'sources' is a required property", report['reason'])

    def _artifact_path(self, source):
        www = self.conf.http_server.document_root
        relative = source['url'].split('/', 3)[3]
        return os.path.join(www, relative)
