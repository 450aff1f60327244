"""A real agent stopped or killed in the middle of a download.

The agent downloads at a capped rate (``[agent] bandwidth_limit``) so the
test can act while the temporary file is being written. Whatever happens
to the daemon, nothing partial appears where Nova boots from, no
temporary file is left behind, and no process of the agent survives its
launcher.
"""

import os
import signal
import subprocess
import time

from precache.common import compression
from precache.common import fileutils
from precache.common import verify
from precache.objects import image as image_mod
from precache.service.servers import http
from precache.tests.fixtures import images
from precache.tests.functional import test_distribution

#: Bytes per second the agents may download here: the image takes ~15 s.
RATE = 256 * 1024
MiB = 1024 * 1024
#: Seconds a stopping agent may take.
STOP_WITHIN = 5


def _children(pid):
    """PIDs of the live processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state, fields[1] the parent's PID.
        if int(fields[1]) == pid and fields[0] != 'Z':
            found.append(int(entry))
    return found


def _alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def wait_for_temp_file(test, agent, timeout=60):
    """Wait until ``agent`` is writing its temporary file; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.isdir(agent.base_path):
            for name in os.listdir(agent.base_path):
                path = os.path.join(agent.base_path, name)
                try:
                    if (name.startswith(fileutils.TEMP_PREFIX) and
                            os.path.getsize(path) > 0):
                        return path
                except FileNotFoundError:
                    continue  # removed since listed
        time.sleep(0.1)
    test.fail('the agent never started writing: %s' % agent.log_tail())


class StopTestCase(test_distribution.OneImageTestCase):
    """An agent stopped while it downloads at ``rate`` bytes/s."""

    rate = RATE

    def start_slow_agent(self):
        agent, = self.start_agents(1, options={
            'agent': {'bandwidth_limit': self.rate}})
        return agent

    def wait_gone(self, pids):
        """Wait up to STOP_WITHIN s for ``pids`` to end; the live ones."""
        deadline = time.monotonic() + STOP_WITHIN
        while (time.monotonic() < deadline and
               any(_alive(pid) for pid in pids)):
            time.sleep(0.1)
        return [pid for pid in pids if _alive(pid)]

    def check_sigterm_mid_download(self, agent):
        """SIGTERM ``agent`` while it writes; check the clean stop."""
        workers = _children(agent.process.pid)
        self.cast(agent)
        wait_for_temp_file(self, agent)
        started = time.monotonic()
        agent.terminate()
        agent.process.wait(30)
        self.assertEqual([], self.wait_gone(workers))
        took = time.monotonic() - started
        self.assertLess(took, STOP_WITHIN, agent.log_tail())
        report = self.endpoint.report_for(agent.host, self.image_id)
        self.assertEqual('failed', report['status'])
        self.assertEqual('interrupted', report['code'], report)
        self.assertNothingLanded(agent, self.image_id)
        return report


class AgentStopTest(StopTestCase):
    """SIGTERM and kill -9 in the middle of a download."""

    data_mib = 8

    def test_sigterm_abandons_the_download_and_cleans_up(self):
        self.check_sigterm_mid_download(self.start_slow_agent())

    def test_killed_launcher_leaves_no_orphan_and_restarts_cleanly(self):
        agent = self.start_slow_agent()
        workers = _children(agent.process.pid)
        self.assertTrue(workers, 'the launcher has no worker process')
        self.cast(agent)
        wait_for_temp_file(self, agent)
        os.kill(agent.process.pid, signal.SIGKILL)
        agent.process.wait(10)
        self.assertEqual([], self.wait_gone(workers), agent.log_tail(25))
        report = self.endpoint.report_for(agent.host, self.image_id)
        self.assertEqual('interrupted', report.get('code'), report)
        self.assertNothingLanded(agent, self.image_id)

        # Back without a cap: the image lands, verified.
        agent.set_options({'agent': {'bandwidth_limit': 0}})
        agent.start()
        self.endpoint.wait_for_heartbeat(agent.host)
        self.cast(agent)
        report = self.endpoint.report_for(agent.host, self.image_id,
                                          after=1)
        self.assertEqual('cached', report['status'], agent.log_tail())
        self.assertLanded(agent, self.image_id, self.raw)


class LargeDownloadStopTest(StopTestCase):
    """Issue 15's acceptance case: SIGTERM in a 200 MiB download at 1 MiB/s.

    The image is 200 MiB of one repeated byte, every cluster allocated,
    served uncompressed: 200 MiB go over the wire at the agent's 1 MiB/s,
    and the agent is stopped a few seconds in.
    """

    data_mib = 1
    rate = MiB
    large_mib = 200

    def configure_service(self):
        super().configure_service()
        self.flags(group=http.GROUP, compression=compression.NONE)

    def setUp(self):
        super().setUp()
        # In place of the small image the test case made.
        self.qcow2 = images.make_patterned_qcow2(
            self.images_dir, self.image_id, self.large_mib)
        self.record, = self.lister.list()

    def test_sigterm_in_a_200_mib_download_at_1_mib_s(self):
        source, = self.server.serve(self.record, self.qcow2)
        self.assertGreaterEqual(source['size'], self.large_mib * MiB)
        agent = self.start_slow_agent()
        report = self.check_sigterm_mid_download(agent)
        self.assertLess(report.get('bytes') or 0, source['size'] // 4,
                        report)


def _read_through(overlay, directory):
    """The digest of what a guest would read from ``overlay`` (as raw)."""
    out = os.path.join(directory, 'overlay-read.raw')
    subprocess.run(['qemu-img', 'convert', '-O', 'raw', overlay, out],
                   check=True, capture_output=True)
    try:
        return verify.file_digest(out)
    finally:
        os.unlink(out)


class InUseBaseImageTest(test_distribution.OneImageTestCase):
    """A base image in use by an instance is never touched but in mtime.

    The overlay stands for a running instance's disk: its backing file is
    the base image the agent landed. Casts of the image again, kills and
    restarts of the agent leave the base file's inode and bytes as they
    were, and the overlay reads the same.
    """

    def test_agent_operations_never_rewrite_an_in_use_base(self):
        agent, = self.start_agents(1)
        self.cast(agent)
        report = self.endpoint.report_for(agent.host, self.image_id)
        self.assertEqual('cached', report['status'], agent.log_tail())
        base = os.path.join(agent.base_path,
                            image_mod.nova_cache_name(self.image_id))
        overlay = os.path.join(self.tempdir, 'instance-disk.qcow2')
        subprocess.run(['qemu-img', 'create', '-f', 'qcow2', '-F', 'raw',
                        '-b', base, overlay], check=True,
                       capture_output=True)
        before = os.stat(base)
        digest = verify.file_digest(base)
        seen = _read_through(overlay, self.tempdir)

        self.cast(agent)  # again: "existing", touched
        report = self.endpoint.report_for(agent.host, self.image_id,
                                          after=1)
        self.assertEqual('existing', report['status'])
        agent.kill()  # the whole group, kill -9
        agent.start()
        self.endpoint.wait_for_heartbeat(agent.host)
        self.cast(agent)
        report = self.endpoint.report_for(agent.host, self.image_id,
                                          after=2)
        self.assertEqual('existing', report['status'])
        agent.stop()

        after = os.stat(base)
        self.assertEqual((before.st_ino, before.st_size),
                         (after.st_ino, after.st_size))
        self.assertEqual(digest, verify.file_digest(base))
        self.assertEqual(seen, _read_through(overlay, self.tempdir))
        self.assertNoLeftovers(agent)


class BrokerRestartTest(test_distribution.OneImageTestCase):
    """The broker restarts in the middle of a download (its own broker)."""

    data_mib = 8

    def test_download_survives_a_broker_restart(self):
        agent, = self.start_agents(1, options={
            'agent': {'bandwidth_limit': RATE}})
        self.cast(agent)
        wait_for_temp_file(self, agent)
        self.broker.restart_app()
        report = self.endpoint.report_for(agent.host, self.image_id,
                                          timeout=120)
        self.assertEqual('cached', report['status'], agent.log_tail())
        self.assertLanded(agent, self.image_id, self.raw)
        with open(agent.log_file) as f:
            downloads = [line for line in f
                         if 'downloading from source' in line]
        self.assertEqual(1, len(downloads), downloads)

        # The agent is back on the broker: a new cast is served.
        other = 'b7c1d2e3-f405-4617-8829-0a1b2c3d4e5f'
        path, raw = test_distribution.make_qcow2(self.images_dir, other,
                                                 data_mib=1)
        record, = [r for r in self.lister.list() if r.id == other]
        self.cast(agent, record=record, path=path)
        report = self.endpoint.report_for(agent.host, other, timeout=120)
        self.assertEqual('cached', report['status'], agent.log_tail())
        self.assertLanded(agent, other, raw)
