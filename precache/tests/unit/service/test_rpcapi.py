"""ServiceAPI over ``fake:/``: versions sent and the ``[upgrade_levels]``
pin."""

import queue

import oslo_messaging as messaging

from precache.common import exception
from precache.common import rpc
from precache.service import manager
from precache.service import rpcapi
from precache.tests import base

OPERATOR_CALLS = (('get_status', {}), ('list_hosts', {}),
                  ('list_images', {}), ('show_image', {'image_id': 'i'}),
                  ('request_cache', {'image_id': 'i'}),
                  ('release', {'image_id': 'i'}))


class Recorder(object):
    """A StateKeeper stand-in that records the requests it is told of."""

    def __init__(self):
        self.requests = queue.Queue()

    def serve_request(self, context, image_id):
        self.requests.put(image_id)


class ServiceAPIVersionTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.fake_rpc()
        self.context = rpc.get_context()

    def start_endpoint(self, server_name='svc', state=None):
        server = rpc.get_server(
            messaging.Target(topic=self.conf.rpc.service_topic,
                             server=server_name),
            [manager.ServiceManager(self.conf, state)])
        server.start()
        self.addCleanup(server.wait)
        self.addCleanup(server.stop)

    def test_endpoint_serves_the_api_version(self):
        self.assertEqual(rpcapi.ServiceAPI.RPC_API_VERSION,
                         manager.ServiceManager.target.version)

    def test_unpinned_client_sends_the_newest_version(self):
        self.start_endpoint()
        api = rpcapi.ServiceAPI(self.conf, timeout=5)
        self.assertEqual(rpcapi.ServiceAPI.RPC_API_VERSION,
                         api.client.version_cap)
        self.assertEqual([], api.desired(self.context, 'cmp-1', []))

    def test_pin_comes_from_upgrade_levels(self):
        self.flags(group='upgrade_levels', service='1.0')
        api = rpcapi.ServiceAPI(self.conf)
        self.assertEqual('1.0', api.client.version_cap)

    def test_explicit_cap_wins_over_the_option(self):
        self.flags(group='upgrade_levels', service='1.0')
        api = rpcapi.ServiceAPI(self.conf, version_cap='1.1')
        self.assertEqual('1.1', api.client.version_cap)

    def test_client_pinned_to_1_0_refuses_desired(self):
        self.flags(group='upgrade_levels', service='1.0')
        api = rpcapi.ServiceAPI(self.conf, timeout=5)
        exc = self.assertRaises(exception.RPCVersionPinned, api.desired,
                                self.context, 'cmp-1', [])
        self.assertIsInstance(exc, exception.ConfigurationError)
        self.assertIn('Cannot send desired to precache-service: it needs '
                      'version 1.1 of the RPC API and [upgrade_levels] '
                      'service caps it at 1.0', str(exc))

    def test_client_pinned_to_1_0_refuses_the_operator_calls(self):
        self.flags(group='upgrade_levels', service='1.0')
        api = rpcapi.ServiceAPI(self.conf, timeout=5)
        for method, kwargs in OPERATOR_CALLS:
            exc = self.assertRaises(exception.RPCVersionPinned,
                                    getattr(api, method), self.context,
                                    **kwargs)
            self.assertEqual(method, exc.kwargs['method'])

    def test_client_pinned_to_1_0_still_casts(self):
        self.flags(group='upgrade_levels', service='1.0')
        self.start_endpoint()
        api = rpcapi.ServiceAPI(self.conf)
        api.report(self.context, 'cmp-1', 'img', 'cached', {})
        api.heartbeat(self.context, 'cmp-1', {'inventory': []})

    def test_serve_request_reaches_every_instance(self):
        instances = {name: Recorder() for name in ('svc-a', 'svc-b')}
        for name, recorder in instances.items():
            self.start_endpoint(name, recorder)
        api = rpcapi.ServiceAPI(self.conf)
        api.serve_request(self.context, 'img')
        for recorder in instances.values():
            self.assertEqual('img', recorder.requests.get(timeout=10))

    def test_client_pinned_to_1_1_does_not_send_serve_request(self):
        self.flags(group='upgrade_levels', service='1.1')
        api = rpcapi.ServiceAPI(self.conf)
        exc = self.assertRaises(exception.RPCVersionPinned,
                                api.serve_request, self.context, 'img')
        self.assertEqual('1.2', exc.kwargs['version'])
