"""Builds precache-service's parts, wired in one place.

::

    StateDB ─┬─► Reconciler(agent_api, notifier) ─┬─► Pipeline(db, distributor)
             └─► StateKeeper(reconciler, requests) ─► ServiceManager (RPC)

The daemon, the all-in-one run, the benchmarks and the tests build the
service from here, so its wiring is written once.
"""

import dataclasses
import queue

from precache.agent import rpcapi as agent_rpcapi
from precache.db import api as db_api
from precache.objects import signing
from precache.service import convergence
from precache.service import instrumented
from precache.service import manager
from precache.service import notifications
from precache.service import pipeline as pipeline_mod
from precache.service import state


@dataclasses.dataclass
class ServiceParts(object):
    """precache-service's collaborators."""

    db: db_api.StateDB
    reconciler: convergence.Reconciler
    state: state.StateKeeper
    manager: manager.ServiceManager
    #: Image ids requested on demand, drained by the service.
    requests: queue.Queue
    #: None when built with ``with_pipeline=False``.
    pipeline: pipeline_mod.Pipeline = None


def open_database(conf):
    """Open ``[database]``; upgrade it or check its schema.

    With ``[service] auto_db_sync`` the schema is upgraded, otherwise a
    schema that is not current stops the service with a clear error.
    """
    db = db_api.StateDB.from_conf(conf)
    if conf.service.auto_db_sync:
        db.sync()
    else:
        db.check_schema()
    return db


def build(conf, db, agent_api=None, notifier=None, with_pipeline=True,
          signer=None, leadership=None, metrics=False, **plugins):
    """Wire the service's parts around ``db``.

    :param conf: the service's ConfigOpts.
    :param db: a :class:`~precache.db.api.StateDB` with a current schema.
    :param agent_api: what casts to agents (default: a real
        :class:`~precache.agent.rpcapi.AgentAPI`; :mod:`precache.common.rpc`
        must then be initialised).
    :param notifier: the rounds' notifier (default: a
        :class:`~precache.service.notifications.RoundNotifier`).
    :param with_pipeline: False for callers that only need the state and
        convergence (no plugin is loaded).
    :param signer: what signs the metas sent to agents (default: from
        ``[signing]``, see :func:`precache.objects.signing.signer_from_conf`).
    :param leadership: this instance's
        :class:`~precache.service.coordination.Leadership`: only the
        leader casts, and ``status`` names it (default: always the leader).
    :param metrics: count casts, rounds, reports and pipeline runs for
        Prometheus (:mod:`precache.service.instrumented`).
    :param plugins: ``listers``, ``fetcher``, ``server`` given to the
        :class:`~precache.service.pipeline.Pipeline` instead of the
        configured plugins.
    :returns: :class:`ServiceParts`.
    :raises ConfigurationError: ``[signing]`` names no usable key.
    """
    if signer is None:
        signer = signing.signer_from_conf(conf)
    if agent_api is None:
        agent_api = agent_rpcapi.AgentAPI(conf)
    if notifier is None:
        notifier = notifications.RoundNotifier(conf.host)
    if metrics:
        agent_api = instrumented.AgentAPI(agent_api)
        notifier = instrumented.RoundNotifier(notifier)
    reconciler = convergence.Reconciler(
        conf, db, agent_api, notifier, signer=signer,
        leader=leadership.is_leader if leadership else None)
    requests = queue.Queue()
    keeper = state.StateKeeper(conf, db, reconciler, notifier,
                               requests=requests if with_pipeline else None,
                               leadership=leadership)
    endpoint = instrumented.StateKeeper(keeper) if metrics else keeper
    parts = ServiceParts(db=db, reconciler=reconciler, state=keeper,
                         manager=manager.ServiceManager(conf, endpoint),
                         requests=requests)
    if with_pipeline:
        parts.pipeline = pipeline_mod.Pipeline(conf, db, reconciler,
                                               **plugins)
        if metrics:
            parts.pipeline = instrumented.Pipeline(parts.pipeline)
    return parts
