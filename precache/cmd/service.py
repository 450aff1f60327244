"""precache-service: the periodic List -> Fetch -> Serve -> Distribute
daemon."""

import sys

from precache import cmd
from precache.service import service


def main(argv=None):
    return cmd.run_service(
        service.PrecacheService,
        sys.argv[1:] if argv is None else argv,
        'Pre-cache golden images on every compute host: lists, fetches '
        'and serves images and asks the agents to cache them.')


if __name__ == '__main__':
    sys.exit(main())
