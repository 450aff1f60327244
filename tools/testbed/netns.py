"""A shaped multi-host network made of Linux network namespaces.

Every node (the control node, the origin, each cache proxy, each compute
host) is a network namespace with one interface, ``eth0``, whose peer sits
on a Linux bridge in a switch namespace of its own. Each link is shaped in
both directions with an htb qdisc: on ``eth0`` (what the node sends) and on
the peer on the bridge (what the node receives). Nothing is created in the
caller's own namespace: the bridge, the veth pairs and the addresses live
only in namespaces made here, all named ``<prefix><run id>-<node>``, and
every address is taken from 198.18.0.0/15 (RFC 2544, benchmarking).

:func:`cleanup` removes every namespace carrying the prefix, after killing
the processes still running in them, so a crashed run leaves nothing.

Every node knows every other node's MAC address from the start
(permanent neighbour entries, :meth:`Testbed.pin_neighbours`): no ARP.
The links are slow (a few Mbit/s) and their queues hold up to 1000
frames, seconds of data; an ARP request or reply waiting behind them
outlasts ARP's 3 s resolution, so a node that needed a neighbour once
the links were busy could never reach it (measured: 17 of 48 hosts
connected to no peer, their SYNs dropped for want of a MAC). Real
links queue milliseconds, and ARP is not what the testbed measures.
"""

import ctypes
import json
import os
import signal
import subprocess
import time
import uuid

#: Namespace names of every testbed start with this.
PREFIX = 'pcb-'
#: The subnet of the testbed (inside 198.18.0.0/15).
NETWORK = '198.18.0.0/16'
PREFIX_LEN = 16
#: Third octet of each role's addresses.
ROLE_OCTETS = {'ctl': 0, 'origin': 0, 'proxy': 1, 'host': 2}
SWITCH = 'sw'
BRIDGE = 'br0'
NODE_IFACE = 'eth0'
#: htb bucket sizes: small enough to shape tightly at tens of Mbit/s.
BURST = '64k'
QUANTUM = '60000'
#: Rate of the unshaped control link.
CONTROL_RATE = '10gbit'

_CLONE_NEWNET = 0x40000000


class TestbedError(Exception):
    """A testbed command failed."""


def run(args, check=True):
    """Run a command; return its standard output as text.

    :raises TestbedError: it failed and ``check`` is true.
    """
    proc = subprocess.run(args, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    if check and proc.returncode != 0:
        raise TestbedError('%s failed (%d): %s' % (
            ' '.join(args), proc.returncode, proc.stderr.strip()))
    return proc.stdout


def list_namespaces(prefix=PREFIX):
    """Return the names of the existing namespaces starting with prefix."""
    out = run(['ip', '-json', 'netns', 'list'], check=False).strip()
    entries = json.loads(out) if out else []
    return sorted(e['name'] for e in entries
                  if e['name'].startswith(prefix))


def namespace_pids(name):
    """Return the PIDs of the processes in namespace ``name``."""
    out = run(['ip', 'netns', 'pids', name], check=False)
    return [int(pid) for pid in out.split()]


def kill_namespace_processes(name, grace=5.0):
    """SIGTERM every process in ``name``, SIGKILL the ones left.

    The calling process is spared: it may live in the control node.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [p for p in namespace_pids(name) if p != os.getpid()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while (set(namespace_pids(name)) - {os.getpid()} and
               time.monotonic() < deadline):
            time.sleep(0.1)


def cleanup(prefix=PREFIX):
    """Remove every namespace starting with ``prefix`` and its processes.

    :returns: the names removed.
    """
    names = list_namespaces(prefix)
    for name in names:
        kill_namespace_processes(name)
    for name in names:
        run(['ip', 'netns', 'del', name], check=False)
    return names


def enter(name):
    """Move the calling thread into namespace ``name``.

    Called from the main thread before any other thread or socket exists,
    it moves the whole process: threads and children made afterwards
    inherit the namespace.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open('/run/netns/%s' % name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise TestbedError('setns(%s): %s' % (name, os.strerror(err)))
    finally:
        os.close(fd)


class Node(object):
    """One namespace with one shaped link to the bridge.

    :param testbed: the :class:`Testbed`.
    :param role: ``ctl``, ``origin``, ``proxy`` or ``host``.
    :param index: the node's number within its role (from 1).
    :param rate: the link's rate in both directions, as tc writes it
        (``40mbit``).
    """

    def __init__(self, testbed, role, index, rate):
        self.role = role
        self.index = index
        self.rate = rate
        short = role if role in ('ctl', 'origin') else '%s%02d' % (
            role[0], index)
        self.short = short
        self.namespace = '%s-%s' % (testbed.name, short)
        self.peer = 'v-%s' % short
        octet = ROLE_OCTETS[role]
        last = {'ctl': 1, 'origin': 2}.get(role, index)
        self.address = '198.18.%d.%d' % (octet, last)
        self._switch = testbed.switch

    def exec_args(self, args):
        """Return ``args`` prefixed to run inside this node."""
        return ['ip', 'netns', 'exec', self.namespace] + list(args)

    def create(self):
        ns = self.namespace
        run(['ip', 'netns', 'add', ns])
        run(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
        run(['ip', '-n', self._switch, 'link', 'add', self.peer, 'type',
             'veth', 'peer', 'name', NODE_IFACE, 'netns', ns])
        run(['ip', '-n', self._switch, 'link', 'set', self.peer, 'master',
             BRIDGE, 'up'])
        run(['ip', '-n', ns, 'addr', 'add',
             '%s/%d' % (self.address, PREFIX_LEN), 'dev', NODE_IFACE])
        run(['ip', '-n', ns, 'link', 'set', NODE_IFACE, 'up'])
        _shape(ns, NODE_IFACE, self.rate)
        _shape(self._switch, self.peer, self.rate)

    def mac(self):
        """Return the MAC address of the node's interface."""
        out = run(['ip', '-n', self.namespace, '-json', 'link', 'show',
                   NODE_IFACE])
        return json.loads(out)[0]['address']

    def counters(self):
        """Return ``(tx_bytes, rx_bytes)`` of the node's interface."""
        out = run(['ip', '-n', self.namespace, '-s', '-json', 'link',
                   'show', NODE_IFACE])
        stats = json.loads(out)[0]['stats64']
        return stats['tx']['bytes'], stats['rx']['bytes']


def _shape(namespace, device, rate):
    """Limit what ``device`` sends to ``rate`` with an htb class."""
    run(['ip', 'netns', 'exec', namespace, 'tc', 'qdisc', 'replace', 'dev',
         device, 'root', 'handle', '1:', 'htb', 'default', '10'])
    run(['ip', 'netns', 'exec', namespace, 'tc', 'class', 'add', 'dev',
         device, 'parent', '1:', 'classid', '1:10', 'htb', 'rate', rate,
         'ceil', rate, 'burst', BURST, 'cburst', BURST, 'quantum',
         QUANTUM])


class Testbed(object):
    """The switch, a control node, an origin, proxies and hosts.

    :param hosts: number of compute hosts.
    :param proxies: number of cache-proxy nodes.
    :param host_rate: link rate of each host (tc syntax, ``40mbit``).
    :param origin_rate: link rate of the origin.
    :param proxy_rate: link rate of each proxy.
    :param name: namespace name prefix; a fresh ``pcb-<hex>`` if None.
    """

    def __init__(self, hosts, proxies, host_rate, origin_rate, proxy_rate,
                 name=None):
        if hosts > 250 or proxies > 250:
            raise TestbedError('at most 250 hosts and 250 proxies')
        self.name = name or '%s%s' % (PREFIX, uuid.uuid4().hex[:6])
        self.switch = '%s-%s' % (self.name, SWITCH)
        self.ctl = Node(self, 'ctl', 1, CONTROL_RATE)
        self.origin = Node(self, 'origin', 1, origin_rate)
        self.proxies = [Node(self, 'proxy', i, proxy_rate)
                        for i in range(1, proxies + 1)]
        self.hosts = [Node(self, 'host', i, host_rate)
                      for i in range(1, hosts + 1)]

    @property
    def nodes(self):
        return [self.ctl, self.origin] + self.proxies + self.hosts

    def create(self):
        """Build the network; on failure remove what was built."""
        try:
            run(['ip', 'netns', 'add', self.switch])
            run(['ip', '-n', self.switch, 'link', 'add', BRIDGE, 'type',
                 'bridge'])
            run(['ip', '-n', self.switch, 'link', 'set', BRIDGE, 'up'])
            for node in self.nodes:
                node.create()
            self.pin_neighbours()
        except BaseException:
            self.destroy()
            raise

    def pin_neighbours(self):
        """Give every node a permanent neighbour entry for every other.

        See the module's docstring: ARP behind queues of seconds fails.
        """
        macs = {node.address: node.mac() for node in self.nodes}
        for node in self.nodes:
            commands = ''.join(
                'neigh replace %s lladdr %s nud permanent dev %s\n'
                % (address, mac, NODE_IFACE)
                for address, mac in macs.items() if address != node.address)
            proc = subprocess.run(['ip', '-n', node.namespace, '-batch', '-'],
                                  input=commands, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                raise TestbedError('pinning the neighbours of %s failed: %s'
                                   % (node.namespace, proc.stderr.strip()))

    def destroy(self):
        """Kill the processes of the testbed and remove its namespaces."""
        return cleanup(self.name + '-')

    def describe(self):
        """Return a JSON-serialisable description of the nodes."""
        return {'name': self.name, 'nodes': [
            {'role': n.role, 'namespace': n.namespace,
             'address': n.address, 'rate': n.rate} for n in self.nodes]}
