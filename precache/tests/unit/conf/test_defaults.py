"""precache's defaults for oslo.messaging's options."""

from oslo_config import cfg
import oslo_messaging as messaging

from precache.conf import defaults
from precache.tests import base


class MessagingDefaultsTest(base.TestCase):

    def test_rpc_server_after_the_generator_hook(self):
        # The sample generator's hook changes the library's own option
        # objects; a configuration whose defaults were set before must
        # still let oslo.messaging register them when it builds a server.
        conf = cfg.ConfigOpts()
        defaults.set_defaults(conf)
        conf([], project='precache')
        defaults.update_generator_defaults()
        transport = messaging.get_rpc_transport(conf, url='fake:/')
        self.addCleanup(transport.cleanup)
        server = messaging.get_rpc_server(
            transport, messaging.Target(topic='t', server='s'), [],
            executor='threading')
        self.assertEqual(defaults.EXECUTOR_THREAD_POOL_SIZE,
                         conf.executor_thread_pool_size)
        self.assertIsNotNone(server)
