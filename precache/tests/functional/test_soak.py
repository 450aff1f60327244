"""The soak tool's short mode (tools/soak/soak.py --short).

A private RabbitMQ, a real precache-service and two real agents go
through a few distribute/withdraw rounds with an agent kill -9, a broker
restart, an agent SIGTERM and a service kill -9, for about two minutes;
the tool exits non-zero when a round does not converge, a killed
launcher leaves its worker behind, or a long-lived process grows (RSS,
open fds) after its warm-up.
"""

import json
import os
import subprocess
import sys

from precache.tests.fixtures import rabbitmq
from precache.tests.functional import base

SOAK = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                    '..', 'tools', 'soak', 'soak.py')


class SoakTest(base.FunctionalTestCase):

    def test_short_soak(self):
        work_dir = os.path.join(self.tempdir, 'work')
        os.makedirs(work_dir)
        result_file = os.path.join(self.tempdir, 'soak.json')
        # The soak restarts its broker: always a private one.
        env = {k: v for k, v in os.environ.items()
               if k != rabbitmq.TRANSPORT_URL_ENV}
        process = subprocess.run(
            [sys.executable, SOAK, '--short', '--work-dir', work_dir,
             '--json', result_file], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=900)
        self.assertEqual(0, process.returncode, process.stdout)
        with open(result_file) as f:
            result = json.load(f)
        self.assertTrue(result['ok'], result['failures'])
        self.assertGreaterEqual(len(result['rounds']), 5, process.stdout)
        self.assertTrue(all(r['converged'] for r in result['rounds']))
        for fault in ('agent-kill9', 'broker-restart', 'agent-sigterm',
                      'service-kill9'):
            self.assertGreaterEqual(result['faults'].get(fault, 0), 1,
                                    result['faults'])
        self.assertEqual([], [r['orphans'] for r in result['rounds']
                              if r['fault'] == 'agent-kill9' and
                              r['orphans']])
        # Every process was sampled; the growth check judged (and passed)
        # the control agent (the last one) that no fault touches.
        names = {p['name'] for p in result['processes']}
        self.assertLessEqual({'service', 'service/worker', 'agent soak-1',
                              'agent soak-1/worker', 'agent soak-2',
                              'agent soak-2/worker'}, names)
        judged = {p['name'] for p in result['processes']
                  if p['verdict'] == 'ok'}
        self.assertIn('agent soak-2/worker', judged, process.stdout)
        # Everything it made is gone.
        self.assertEqual([], os.listdir(work_dir))
