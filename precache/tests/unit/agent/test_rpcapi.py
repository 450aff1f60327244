"""AgentAPI: the version its endpoint serves and the ``[upgrade_levels]``
pin."""


from precache.agent import manager
from precache.agent import rpcapi
from precache.tests import base


class AgentAPIVersionTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.fake_rpc()

    def test_endpoint_serves_the_api_version(self):
        self.assertEqual(rpcapi.AgentAPI.RPC_API_VERSION,
                         manager.AgentManager.target.version)

    def test_unpinned_client_sends_the_newest_version(self):
        self.assertEqual(rpcapi.AgentAPI.RPC_API_VERSION,
                         rpcapi.AgentAPI(self.conf).client.version_cap)

    def test_pin_comes_from_upgrade_levels(self):
        self.flags(group='upgrade_levels', agent='1.0')
        api = rpcapi.AgentAPI(self.conf)
        self.assertEqual('1.0', api.client.version_cap)
        self.assertTrue(api.client.can_send_version('1.0'))
        self.assertFalse(api.client.can_send_version('1.1'))
