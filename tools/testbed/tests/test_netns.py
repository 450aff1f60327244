"""A real (small) testbed of network namespaces (tools/testbed/netns.py).

Namespaces need root: CI runs as root.
"""

import json
import os
import subprocess
import sys
import unittest

import netns
from precache.tests import base


_SERVER = '''
import socket, sys
with socket.create_server((sys.argv[1], 0)) as sock:
    print(sock.getsockname()[1], flush=True)
    sock.settimeout(20)
    conn, _ = sock.accept()
    conn.sendall(('hello from %s' % sys.argv[1]).encode())
    conn.close()
'''
_CLIENT = '''
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), 20) as conn:
    print(conn.recv(100).decode())
'''


@unittest.skipUnless(os.geteuid() == 0, 'network namespaces need root')
class TestbedTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.testbed = netns.Testbed(hosts=2, proxies=0, host_rate='8mbit',
                                     origin_rate='8mbit', proxy_rate='8mbit')
        self.addCleanup(self.testbed.destroy)
        self.testbed.create()

    def neighbours(self, node):
        out = netns.run(['ip', '-n', node.namespace, '-json', 'neigh',
                         'show', 'dev', netns.NODE_IFACE])
        return {entry['dst']: (entry['lladdr'], entry['state'])
                for entry in json.loads(out)}

    def test_every_node_knows_every_other_mac_for_good(self):
        nodes = self.testbed.nodes
        for node in nodes:
            expected = {other.address: (other.mac(), ['PERMANENT'])
                        for other in nodes if other is not node}
            self.assertEqual(expected, self.neighbours(node))

    def test_hosts_reach_each_other_over_tcp(self):
        first, second = self.testbed.hosts
        server = subprocess.Popen(
            second.exec_args([sys.executable, '-c', _SERVER,
                              second.address]),
            stdout=subprocess.PIPE, text=True)
        self.addCleanup(server.wait, 10)
        port = server.stdout.readline().strip()
        answer = netns.run(first.exec_args([
            sys.executable, '-c', _CLIENT, second.address, port]))
        self.assertEqual('hello from %s' % second.address, answer.strip())

    def test_destroy_removes_the_namespaces(self):
        self.testbed.destroy()
        self.assertEqual([], netns.list_namespaces(self.testbed.name))
