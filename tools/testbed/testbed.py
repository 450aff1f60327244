"""Build, list and remove precache testbed networks by hand.

    python tools/testbed/testbed.py up --hosts 4 --proxies 1 \\
        --host-rate 40mbit --origin-rate 40mbit --proxy-rate 40mbit
    python tools/testbed/testbed.py list
    python tools/testbed/testbed.py cleanup        # every pcb-* namespace

``up`` prints the nodes (namespace, address, rate) as JSON and leaves the
network in place: run commands in a node with ``ip netns exec NS ...``.
The benchmark (``tools/bench/distribution_benchmark.py``) builds and
removes its own testbed; ``cleanup`` removes what a killed run left.
Needs root.
"""

import argparse
import json
import sys

import netns


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    up = sub.add_parser('up', help='build a testbed and leave it running')
    up.add_argument('--hosts', type=int, default=4)
    up.add_argument('--proxies', type=int, default=1)
    up.add_argument('--host-rate', default='40mbit')
    up.add_argument('--origin-rate', default='40mbit')
    up.add_argument('--proxy-rate', default='40mbit')
    sub.add_parser('list', help='list the testbed namespaces')
    sub.add_parser('cleanup', help='kill the processes of every testbed '
                                   'namespace and remove them')
    args = parser.parse_args(argv)
    if args.command == 'up':
        testbed = netns.Testbed(args.hosts, args.proxies, args.host_rate,
                                args.origin_rate, args.proxy_rate)
        testbed.create()
        print(json.dumps(testbed.describe(), indent=2))
    elif args.command == 'list':
        print('\n'.join(netns.list_namespaces()))
    else:
        removed = netns.cleanup()
        print('removed %d namespace(s)' % len(removed))
    return 0


if __name__ == '__main__':
    sys.exit(main())
