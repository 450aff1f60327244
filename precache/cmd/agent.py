"""precache-agent: lands images in this compute host's image cache."""

import sys

from precache.agent import service
from precache import cmd


def main(argv=None):
    return cmd.run_service(
        service.AgentService,
        sys.argv[1:] if argv is None else argv,
        'Receive cache requests from precache-service and land the images '
        'where nova-compute will use them.')


if __name__ == '__main__':
    sys.exit(main())
