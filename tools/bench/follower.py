"""A busy follower instance on the benchmark's database.

Two processes of their own (``spawn``), over a real RabbitMQ:

``follower``
    the service's RPC endpoints as a follower instance runs them
    (:class:`~precache.service.manager.ServiceManager` over the
    :class:`~precache.service.state.StateKeeper` and
    :class:`~precache.service.convergence.Reconciler` that
    :func:`precache.service.factory.build` wires) on the same database as
    the leader, with a leadership that never leads. Its ``cache`` casts
    to agents go through the real AgentAPI and are counted: a follower
    must send none.
``load``
    what agents and operators send to the service topic, at a stated
    rate while the follower is *busy*: per 40 messages, 30 heartbeats
    (each with a full inventory), 8 reports, one ``desired`` call and one
    ``get_status`` call (the CLI's ``precache status``).

The load names a fixed set of hosts (:func:`hosts`) that the benchmark's
scenarios leave alone, and reports on an image no scenario desires, so
that the follower's writes never change what the leader's passes cast.

:class:`Follower` starts both, switches the load on and off around the
leader's timed passes and stops everything it started.
"""

import multiprocessing
import time

import oslo_messaging as messaging

from precache.agent import rpcapi as agent_rpcapi
from precache.common import rpc
from precache.db import api as db_api
from precache.objects import states
from precache.service import factory
from precache.service import manager as service_manager
from precache.service import notifications
from precache.service import rpcapi

import benchdb
import benchrpc

FOLLOWER_HOST = 'bench-follower'
LEADER_HOST = 'bench-leader'
#: The image the load reports on: no scenario desires it.
REPORTED_IMAGE = 'bench-follower-reports'
#: The load's message mix, one period of it.
MIX = ['heartbeat'] * 30 + ['report'] * 8 + ['desired', 'get_status']
STARTUP_TIMEOUT = 60


def hosts(count, host_total):
    """Host numbers (1-based ids) the load speaks for: every tenth one."""
    return list(range(1, host_total + 1, 10))[:count]


class NeverLeads(object):
    """A follower's leadership: another instance leads."""

    enabled = True

    def is_leader(self):
        return False

    def describe(self):
        return {'instance': FOLLOWER_HOST, 'leader': LEADER_HOST,
                'leader_since': None}


class CountingAgentAPI(object):
    """The real AgentAPI, its casts counted in a shared value."""

    def __init__(self, api, counter):
        self.api = api
        self.counter = counter

    def cache(self, context, image_id, meta, host=None):
        with self.counter.get_lock():
            self.counter.value += 1
        return self.api.cache(context, image_id, meta, host=host)


def follower_main(transport_url, db_url, ready, stop, casts, handled):
    """The follower process: serve the service topic until ``stop``."""
    conf = benchrpc.configure(transport_url, FOLLOWER_HOST)
    db = db_api.StateDB(db_url)
    parts = factory.build(
        conf, db,
        agent_api=CountingAgentAPI(agent_rpcapi.AgentAPI(conf), casts),
        notifier=notifications.RoundNotifier(FOLLOWER_HOST),
        with_pipeline=False, signer=benchdb.signer(),
        leadership=NeverLeads())
    endpoint = service_manager.ServiceManager(conf, parts.state)

    def count(kind, host, payload):
        with handled.get_lock():
            handled.value += 1

    endpoint.add_listener(count)
    server = rpc.get_server(messaging.Target(
        topic=conf.rpc.service_topic, server=FOLLOWER_HOST), [endpoint])
    server.start()
    ready.set()
    try:
        stop.wait()
    finally:
        server.stop()
        server.wait()
        db.engine.dispose()
        rpc.cleanup()


def load_main(transport_url, rate, host_names, image_ids, ready, busy, stop,
              sent, calls):
    """The load process: send :data:`MIX` at ``rate``/s while ``busy``."""
    conf = benchrpc.configure(transport_url, 'bench-follower-load')
    api = rpcapi.ServiceAPI(conf, timeout=60)
    context = rpc.get_context()
    inventory = benchdb.inventory(image_ids)
    disk = {'total': 2 * 1024 ** 4, 'free': 1024 ** 4,
            'cache_bytes': len(image_ids) * 3 * 1024 ** 3}
    ready.set()
    index = 0
    try:
        while not stop.is_set():
            if not busy.wait(0.2):
                continue
            due = time.monotonic()
            while busy.is_set() and not stop.is_set():
                host = host_names[index % len(host_names)]
                kind = MIX[index % len(MIX)]
                started = time.monotonic()
                if kind == 'heartbeat':
                    api.heartbeat(context, host, {
                        'version': '1.0.0', 'labels': ['az1'],
                        'disk': disk, 'inventory': inventory})
                elif kind == 'report':
                    api.report(context, host, REPORTED_IMAGE,
                               states.CACHED, {'bytes': 1, 'seconds': 0.1})
                elif kind == 'desired':
                    api.desired(context, host, ['az1'])
                else:
                    api.get_status(context)
                if kind in ('desired', 'get_status'):
                    calls.append(time.monotonic() - started)
                with sent.get_lock():
                    sent.value += 1
                index += 1
                due += 1.0 / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
    finally:
        rpc.cleanup()


class Follower(object):
    """Starts the follower and its load; switches the load on and off.

    :param transport_url: the broker.
    :param db_url: the leader's database.
    :param rate: messages per second the load sends while busy.
    :param host_names: the hosts the load speaks for.
    :param image_ids: their inventory (every image).
    """

    def __init__(self, transport_url, db_url, rate, host_names, image_ids):
        spawn = multiprocessing.get_context('spawn')
        self.manager = spawn.Manager()
        self.stop_event = spawn.Event()
        self.busy = spawn.Event()
        self.casts = spawn.Value('l', 0)
        self.handled = spawn.Value('l', 0)
        self.sent = spawn.Value('l', 0)
        self.calls = self.manager.list()
        self.rate = rate
        ready = [spawn.Event(), spawn.Event()]
        self.processes = [
            spawn.Process(target=follower_main, name='bench-follower',
                          args=(transport_url, db_url, ready[0],
                                self.stop_event, self.casts, self.handled)),
            spawn.Process(target=load_main, name='bench-follower-load',
                          args=(transport_url, rate, host_names, image_ids,
                                ready[1], self.busy, self.stop_event,
                                self.sent, self.calls))]
        try:
            for process, event in zip(self.processes, ready):
                process.start()
                if not event.wait(STARTUP_TIMEOUT):
                    raise SystemExit('%s did not start in %ds'
                                     % (process.name, STARTUP_TIMEOUT))
        except BaseException:
            self.close()
            raise

    def counts(self):
        """``(sent, handled)`` so far."""
        return self.sent.value, self.handled.value

    def set_busy(self, busy):
        if busy:
            self.busy.set()
        else:
            self.busy.clear()

    def close(self):
        """Stop both processes (SIGTERM, then SIGKILL) and the manager."""
        self.busy.clear()
        self.stop_event.set()
        for process in self.processes:
            if process.pid is None:
                continue
            process.join(30)
            if process.is_alive():
                process.terminate()
                process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
        self.manager.shutdown()
