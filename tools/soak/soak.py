"""Soak precache: a service and agents through rounds with faults.

    python tools/soak/soak.py --minutes 32 --agents 3 --json soak.json
    python tools/soak/soak.py --short          # what CI runs, 2-4 minutes

A private RabbitMQ, a real ``precache-service`` (directory lister, file
fetcher, http server) and ``--agents`` real ``precache-agent`` processes
with Nova-style stores run under a temporary directory. Each round:

1. a new small qcow2 image appears in the listed directory and, past
   ``--window`` images, the oldest one leaves it;
2. a fault begins (``--faults``, in turn: agent SIGTERM, agent kill -9 of
   the launcher or of the process group, service kill -9, broker
   stopped), the image is placed, ``--down-seconds`` later the fault ends
   (the process is restarted, the broker started);
3. the round converges when every agent holds every listed image with
   the right sha512 in ``_base``, no aged-out image came back and no
   temporary or partial file is left (agents and the service's staging);
   then the images that left the listing are aged out of ``_base`` as
   Nova's image cache manager would.

Every ``--sample-interval`` seconds each process (launchers and workers)
is sampled for RSS and open fds (/proc). At the end the tool prints the
rounds, a timeline and, per process incarnation, RSS and fds at start,
min, max and end, and fails (exit status 1) when a round did not
converge, a killed launcher left its worker behind, or a long-lived
incarnation grew after its warm-up (see ``growth.py``). New rounds start
until ``--cycles`` rounds ran or ``--minutes`` passed; a round in
progress ends within ``--round-timeout``. Everything started is stopped
and the temporary directory removed (``--keep`` keeps it).
"""

import argparse
import collections
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid

from precache import cmd  # noqa: F401 (first: the threading backend)
from precache.common import verify  # noqa: H306
from precache.tests.fixtures import images

import growth
import landing
import procstats
import report
import rig as rig_mod

MiB = 1024 * 1024
DEFAULT_FAULTS = ('none', 'agent-sigterm', 'agent-kill9', 'broker-restart',
                  'service-kill9', 'agent-kill9-group')
#: ``--short``: a few rounds with a kill and a broker restart, for CI;
#: options given on the command line still win.
SHORT = dict(cycles=10, minutes=2, agents=2, faults=','.join((
    'service-kill9', 'agent-kill9', 'broker-restart', 'agent-sigterm',
    'none')), warmup=20.0, min_span=20.0, sample_interval=2.0,
    pause=4.0, round_timeout=120.0)
#: An agent's answer to a cache request, as it logs it.
_ANSWER = re.compile(r'Image (\S+) (\w+) in [\d.]+s')


class Stopped(Exception):
    """SIGTERM, SIGINT or the hard time limit: stop and clean up."""


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--cycles', type=int, default=1000,
                        help='rounds to run at most')
    parser.add_argument('--minutes', type=float, default=10,
                        help='start no round after this many minutes')
    parser.add_argument('--agents', type=int, default=3)
    parser.add_argument('--faults', default=','.join(DEFAULT_FAULTS),
                        help='faults injected in turn, one per round: %s'
                             % ', '.join(sorted(rig_mod.FAULTS)))
    parser.add_argument('--window', type=int, default=3,
                        help='images listed at once')
    parser.add_argument('--image-mib', type=int, default=1,
                        help='MiB of data per image')
    parser.add_argument('--virtual-mib', type=int, default=4,
                        help='virtual size of each image, MiB')
    parser.add_argument('--down-seconds', type=float, default=2.0,
                        help='how long a fault lasts')
    parser.add_argument('--pause', type=float, default=2.0,
                        help='seconds between two rounds')
    parser.add_argument('--round-timeout', type=float, default=180.0,
                        help='seconds a round may take to converge')
    parser.add_argument('--sample-interval', type=float, default=5.0)
    parser.add_argument('--warmup', type=float,
                        default=growth.DEFAULT_LIMITS.warmup,
                        help='seconds of an incarnation before its '
                             'reference sample')
    parser.add_argument('--min-span', type=float,
                        default=growth.DEFAULT_LIMITS.min_span,
                        help='seconds after the warm-up an incarnation '
                             'must live to be checked')
    parser.add_argument('--fd-slack', type=int,
                        default=growth.DEFAULT_LIMITS.fd_slack,
                        help='open fds a process may gain after warm-up')
    parser.add_argument('--rss-fraction', type=float,
                        default=growth.DEFAULT_LIMITS.rss_fraction,
                        help='fraction of its warm-up RSS a process may '
                             'gain')
    parser.add_argument('--rss-slack-mib', type=float,
                        default=growth.DEFAULT_LIMITS.rss_slack / MiB,
                        help='MiB of RSS a process may gain in any case')
    parser.add_argument('--work-dir', help='parent of the temporary '
                                           'directory')
    parser.add_argument('--keep', action='store_true',
                        help='keep the temporary directory')
    parser.add_argument('--json', metavar='PATH',
                        help='also write the result as JSON (- for stdout)')
    parser.add_argument('--short', action='store_true',
                        help='the short mode CI runs: %s' % ', '.join(
                            '%s=%s' % item for item in sorted(SHORT.items())))
    if '--short' in argv:
        parser.set_defaults(**SHORT)
    args = parser.parse_args(argv)
    args.fault_names = [f.strip() for f in args.faults.split(',')
                        if f.strip()]
    unknown = sorted(set(args.fault_names) - set(rig_mod.FAULTS))
    if unknown or not args.fault_names:
        parser.error('unknown fault(s) %s; known: %s' % (
            ', '.join(unknown) or '(none given)',
            ', '.join(sorted(rig_mod.FAULTS))))
    return args


def limits_of(args):
    return growth.Limits(warmup=args.warmup, min_span=args.min_span,
                         fd_slack=args.fd_slack,
                         rss_fraction=args.rss_fraction,
                         rss_slack=args.rss_slack_mib * MiB)


def answers(log_files):
    """``{answer: count}`` of the agents' answers, from their logs."""
    counts = collections.Counter()
    for name, path in log_files.items():
        if not name.startswith('agent '):
            continue
        try:
            with open(path, errors='replace') as f:
                for line in f:
                    match = _ANSWER.search(line)
                    if match:
                        counts[match.group(2)] += 1
        except OSError:
            continue
    return dict(counts)


class Soak(object):
    """The rounds over a started :class:`rig_mod.Rig`."""

    def __init__(self, args, rig, work_dir, out=sys.stdout):
        self.args = args
        self.rig = rig
        self.out = out
        self.make_dir = os.path.join(work_dir, 'make')
        os.makedirs(self.make_dir, exist_ok=True)
        self.desired = collections.OrderedDict()
        self.withdrawn = set()
        self.digests = landing.DigestCache()
        self.rounds = []

    def say(self, text):
        print(text, file=self.out, flush=True)

    def new_image(self):
        """Make an image in the side directory; return (id, path, sha512)."""
        image_id = str(uuid.uuid4())
        path, raw = images.make_qcow2(self.make_dir, image_id,
                                      data_mib=self.args.image_mib,
                                      virtual_mib=self.args.virtual_mib)
        sha512 = verify.file_digest(raw, 'sha512')
        os.unlink(raw)
        return image_id, path, sha512

    def problems(self):
        """``{host: problems}`` of the hosts (and service) not converged."""
        found = {}
        for host, agent in self.rig.agents.items():
            result = landing.inspect(agent.base_dir, agent.base_path,
                                     self.desired, self.withdrawn,
                                     self.digests)
            if not landing.converged(result):
                found[host] = result
        staging = landing.partial_files(os.path.join(
            self.rig.service.base_dir, 'staging'))
        if staging:
            found['service'] = {'partial': staging}
        return found

    def wait_converged(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            problems = self.problems()
            if not problems or time.monotonic() > deadline:
                return problems
            time.sleep(0.5)

    def run_round(self, cycle):
        name = self.args.fault_names[(cycle - 1) % len(
            self.args.fault_names)]
        fault = rig_mod.FAULTS[name](self.rig, cycle)
        record = {'cycle': cycle, 'fault': name, 'started': time.time()}
        image_id, path, sha512 = self.new_image()
        leaving = []
        while len(self.desired) >= self.args.window:
            old, _sha = self.desired.popitem(last=False)
            os.unlink(os.path.join(self.rig.images_dir, old))
            leaving.append(old)
        record.update(fault.begin())
        placed = time.monotonic()
        os.rename(path, os.path.join(self.rig.images_dir, image_id))
        self.desired[image_id] = sha512
        time.sleep(self.args.down_seconds)
        record.update(fault.end())
        ended = time.monotonic()
        problems = self.wait_converged(self.args.round_timeout)
        now = time.monotonic()
        record.update(image_id=image_id, converged=not problems,
                      problems=problems, seconds=round(now - placed, 2),
                      recovery_seconds=round(now - ended, 2))
        for old in leaving:
            for agent in self.rig.agents.values():
                landing.age_out(agent.base_path, old)
            self.withdrawn.add(old)
        self.rounds.append(record)
        self.say('round %d: %s%s, %s in %.1fs (%.1fs after the fault '
                 'ended)%s' % (
                     cycle, name, ' on %s' % record['target']
                     if record.get('target') else '',
                     'converged' if not problems else 'NOT converged',
                     record['seconds'], record['recovery_seconds'],
                     ' orphans: %s' % record['orphans']
                     if record.get('orphans') else ''))
        return record

    def run(self, deadline):
        cycle = 0
        while cycle < self.args.cycles and time.monotonic() < deadline:
            cycle += 1
            record = self.run_round(cycle)
            if not record['converged'] or record.get('orphans'):
                break
            time.sleep(self.args.pause)


def failures_of(rounds, summaries):
    failures = []
    for r in rounds:
        if not r['converged']:
            failures.append('round %d (%s) did not converge: %s'
                            % (r['cycle'], r['fault'], r['problems']))
        if r.get('orphans'):
            failures.append('round %d (%s): workers %s outlived their '
                            'killed launcher' % (r['cycle'], r['fault'],
                                                 r['orphans']))
    for s in summaries:
        failures.extend('%s (pid %d): %s' % (s['name'], s['pid'], problem)
                        for problem in s['problems'])
    return failures


def _raise_stopped(signum, frame):
    raise Stopped('signal %d' % signum)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    deadline = started + args.minutes * 60
    # A hard bound whatever happens: the last round, then the teardown.
    signal.signal(signal.SIGALRM, _raise_stopped)
    signal.alarm(int(args.minutes * 60 + args.round_timeout + 600))
    signal.signal(signal.SIGTERM, _raise_stopped)
    signal.signal(signal.SIGINT, _raise_stopped)
    work_dir = tempfile.mkdtemp(prefix='precache-soak-', dir=args.work_dir)
    images_dir = os.path.join(work_dir, 'images')
    os.makedirs(images_dir)
    sampler = soak = None
    stopped = None
    try:
        with rig_mod.Rig(work_dir, images_dir, args.agents) as rig:
            print('soak: broker, service and %d agent(s) up in %.1fs under '
                  '%s' % (args.agents, time.monotonic() - started,
                          work_dir), flush=True)
            sampler = procstats.Sampler(rig.roots, args.sample_interval)
            sampler.start()
            soak = Soak(args, rig, work_dir)
            try:
                soak.run(deadline)
            except Stopped as exc:
                stopped = str(exc)
            finally:
                sampler.stop()
                agent_answers = answers(rig.logs())
    except Stopped as exc:
        stopped = stopped or str(exc)
    finally:
        signal.alarm(0)
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    samples = sampler.snapshot() if sampler else []
    rounds = soak.rounds if soak else []
    summaries = growth.check(samples, limits_of(args))
    failures = failures_of(rounds, summaries)
    if stopped:
        failures.append('stopped early: %s' % stopped)
    if not rounds:
        failures.append('no round ran')
    result = {
        'command': ['soak.py'] + list(sys.argv[1:] if argv is None
                                      else argv),
        'agents': args.agents, 'minutes': round(
            (time.monotonic() - started) / 60, 2),
        'limits': limits_of(args)._asdict(),
        'rounds': rounds,
        'faults': dict(collections.Counter(r['fault'] for r in rounds)),
        'answers': agent_answers if soak else {},
        'processes': summaries,
        'samples': [list(s) for s in samples],
        'failures': failures, 'ok': not failures,
    }
    print('\nRounds\n' + report.rounds_table(rounds))
    print('\nRSS MiB / open fds over time\n' + report.timeline_table(samples))
    print('\nPer process incarnation\n' + report.process_table(summaries))
    print('\nAgents\' answers: %s' % result['answers'])
    print('\n' + ('\n'.join('FAIL: ' + f for f in failures) if failures
                  else 'OK: %d round(s), every one converged, nothing grew'
                  % len(rounds)))
    if args.json:
        text = report.to_json(result)
        if args.json == '-':
            print(text)
        else:
            with open(args.json, 'w') as f:
                f.write(text + '\n')
    return 0 if not failures else 1


if __name__ == '__main__':
    sys.exit(main())
