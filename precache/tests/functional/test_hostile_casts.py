"""Hostile casts on a real bus: agents obey only the service's signature.

Whoever holds the bus credentials (every compute host) can cast
``cache`` to the agents. Here the test is that caster: it casts with an
oslo.messaging client of its own to real ``precache-agent`` processes
over a real RabbitMQ. Unsigned, wrongly signed and replayed-with-changes
casts, and a forged huge generation, are refused with their report code
before any download (the origin counts its connections: none) and
nothing is written in ``_base``; casts of a service whose database was
recreated (a new epoch, lower counters) are obeyed.
"""

import copy
import hashlib
import http.server
import os
import threading
import time

from oslo_config import cfg
import oslo_messaging as messaging

from precache.db import api as db_api
from precache.objects import image as image_mod
from precache.objects import meta as meta_mod
from precache.tests.fixtures import control_plane
from precache.tests.fixtures import signing as signing_fixture
from precache.tests.functional import test_distribution

IMAGE_ID = '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a'
SIZE = 1024 * 1024


class CountingOrigin(object):
    """An HTTP origin serving ``directory`` that counts its connections."""

    def __init__(self, directory):
        origin = self
        self.connections = 0
        self._lock = threading.Lock()

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=directory, **kwargs)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                request = super().get_request()
                with origin._lock:
                    origin.connections += 1
                return request

        self.server = Server(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d/' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class HostileCastsTest(test_distribution.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.endpoint = self.useFixture(
            control_plane.ServiceEndpointFixture(self.conf))
        www = os.path.join(self.tempdir, 'www')
        os.makedirs(www)
        self.data = b'precache hostile-cast test image\n' * (SIZE // 33)
        with open(os.path.join(www, IMAGE_ID), 'wb') as f:
            f.write(self.data)
        self.origin = CountingOrigin(www)
        self.addCleanup(self.origin.stop)
        self.agent = self.useFixture(control_plane.AgentProcessFixture(
            self.messaging, 'hostile-target', self.tempdir))
        self.endpoint.wait_for_heartbeat(self.agent.host)
        # The attacker's own client on the shared bus.
        transport = messaging.get_rpc_transport(cfg.CONF)
        self.addCleanup(transport.cleanup)
        self.client = messaging.get_rpc_client(transport, messaging.Target(
            topic=self.messaging.agent_topic, version='1.0'))
        self.other_keys = self.useFixture(
            signing_fixture.SigningKeysFixture(name='attacker'))
        self.epoch = meta_mod.new_epoch()

    def build(self, image_id=IMAGE_ID, epoch=None, generation=None,
              **image):
        record = image_mod.ImageRecord(
            id=image_id, name='hostile', disk_format='raw',
            size=len(self.data), os_hash_algo='sha512',
            os_hash_value=hashlib.sha512(self.data).hexdigest())
        for key, value in image.items():
            setattr(record, key, value)
        return meta_mod.build(
            record, [{'method': 'http', 'url': self.origin.url + IMAGE_ID,
                      'compression': 'none', 'size': len(self.data)}],
            epoch=epoch or self.epoch, generation=generation)

    def cast(self, meta, image_id=IMAGE_ID, fanout=False):
        cctxt = (self.client.prepare(fanout=True) if fanout else
                 self.client.prepare(server=self.agent.host))
        cctxt.cast({}, 'cache', image_id=image_id, meta=meta)

    def report(self, image_id=IMAGE_ID, after=0):
        return self.endpoint.report_for(self.agent.host, image_id, after)

    def assertRefused(self, code, image_id=IMAGE_ID, after=0):
        report = self.report(image_id, after)
        self.assertEqual(('failed', code), (report['status'],
                                            report.get('code')), report)
        return report

    def assertNothingHappened(self):
        self.assertEqual(0, self.origin.connections)
        landed = (os.listdir(self.agent.base_path)
                  if os.path.isdir(self.agent.base_path) else [])
        self.assertEqual([], landed)

    def landed_path(self, image_id=IMAGE_ID):
        return os.path.join(self.agent.base_path,
                            image_mod.nova_cache_name(image_id))

    def wait_for_log(self, text, count=1, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.agent.log_file, errors='replace') as f:
                if f.read().count(text) >= count:
                    return
            time.sleep(0.1)
        self.fail('%r not in the agent log:\n%s'
                  % (text, self.agent.log_tail()))

    # Refused -----------------------------------------------------------

    def test_unsigned_casts_are_refused(self):
        self.cast(self.build())
        self.assertRefused('unsigned')
        self.cast(self.build(), fanout=True)
        report = self.assertRefused('unsigned', after=1)
        self.assertIn('must carry the service\'s signature',
                      report['reason'])
        self.wait_for_log('Refusing cache request for image %s (unsigned)'
                          % IMAGE_ID, count=2)
        self.assertNothingHappened()

    def test_wrongly_signed_casts_are_refused(self):
        # Signed by a key the agents do not trust.
        self.cast(self.other_keys.sign(self.build()))
        report = self.assertRefused('unknown_key')
        self.assertIn(self.other_keys.key_id, report['reason'])
        # Signed by that key but claiming the service's key id.
        forged = self.other_keys.sign(self.build())
        forged['signature']['key_id'] = self.signing_keys.key_id
        self.cast(forged)
        self.assertRefused('bad_signature', after=1)
        self.assertNothingHappened()

    def test_replayed_casts_with_one_change_are_refused(self):
        # A genuine meta seen on the bus, meant for another host.
        genuine = self.sign(dict(self.build(),
                                 targets={'hosts': ['elsewhere']}))
        changes = [
            ('targets', lambda m: m.update(targets=None)),
            ('url', lambda m: m['sources'][0].update(
                url=self.origin.url + 'evil')),
            ('hash', lambda m: m['image'].update(
                os_hash_value='ab' * 64)),
            ('pin', lambda m: m.update(pin_until=2 ** 40)),
        ]
        for after, (what, change) in enumerate(changes):
            replayed = copy.deepcopy(genuine)
            change(replayed)
            self.cast(replayed, fanout=True)
            report = self.assertRefused('bad_signature', after=after)
            self.assertIn('changed after it was signed', report['reason'],
                          what)
        self.assertNothingHappened()

    def test_hostile_image_id_is_refused_and_quoted(self):
        hostile = 'x\x1b[2J\n' + 'y' * 300
        self.cast(self.sign(self.build()), image_id=hostile)
        quoted = image_mod.quote_id(hostile)
        report = self.assertRefused('invalid_image_id', image_id=quoted)
        self.assertNotIn('\x1b', report['reason'])
        self.wait_for_log('Refusing cache request for image %s' % quoted)
        with open(self.agent.log_file, errors='replace') as f:
            self.assertNotIn('\x1b', f.read())
        self.assertNothingHappened()

    def test_forged_huge_generation_is_refused(self):
        forged = self.sign(self.build())
        forged['generation'] = 2 ** 62
        self.cast(forged)
        self.assertRefused('bad_signature')
        self.assertNothingHappened()
        # It did not make the service's next decision look stale.
        self.cast(self.sign(self.build()))
        report = self.report(after=1)
        self.assertEqual('cached', report['status'], report)
        self.assertTrue(os.path.exists(self.landed_path()))

    # Obeyed ---------------------------------------------------------------

    def test_service_with_a_recreated_database_is_obeyed(self):
        # Two databases of the service, the second made after the first
        # was lost: each has an epoch of its own.
        old_db = db_api.StateDB('sqlite:///' + os.path.join(
            self.tempdir, 'old.sqlite'))
        old_db.sync()
        new_db = db_api.StateDB('sqlite:///' + os.path.join(
            self.tempdir, 'new.sqlite'))
        new_db.sync()
        self.addCleanup(old_db.engine.dispose)
        self.addCleanup(new_db.engine.dispose)
        self.assertNotEqual(old_db.epoch(), new_db.epoch())
        # The old database's counters ran far ahead (a clock set wrong).
        self.cast(self.sign(self.build(epoch=old_db.epoch(),
                                       generation=2 ** 60)))
        self.assertEqual('cached', self.report()['status'])
        os.unlink(self.landed_path())  # aged out by Nova meanwhile
        # Same epoch, lower counter: stale, ignored.
        self.cast(self.sign(self.build(epoch=old_db.epoch(),
                                       generation=5)))
        self.wait_for_log('Ignoring a stale request for image %s'
                          % IMAGE_ID)
        self.assertFalse(os.path.exists(self.landed_path()))
        # The new database's decision, with a much lower counter, is
        # followed: the image comes back.
        self.cast(self.sign(self.build(
            epoch=new_db.epoch(), generation=meta_mod.new_generation())))
        report = self.report(after=1)
        self.assertEqual('cached', report['status'], report)
        self.assertTrue(os.path.exists(self.landed_path()))
        with open(self.landed_path(), 'rb') as f:
            self.assertEqual(self.data, f.read())
        self.assertEqual(2, self.endpoint.count_reports(self.agent.host,
                                                        IMAGE_ID))
