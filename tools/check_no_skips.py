"""Fail when the last stestr run skipped tests or ran none.

CI must prove the functional suite ran against real servers: a skip there
means a server was not started, which is a failure, not a pass.
"""

import io
import subprocess
import sys

import subunit
import testtools


def main():
    stream = subprocess.run(['stestr', 'last', '--subunit'],
                            capture_output=True, check=True).stdout
    result = testtools.StreamSummary()
    case = subunit.ByteStreamToStreamResult(
        io.BytesIO(stream), non_subunit_name='stdout')
    result.startTestRun()
    case.run(result)
    result.stopTestRun()
    ran = result.testsRun
    skipped = [test.id() for test, _ in result.skipped]
    if not ran:
        print('check_no_skips: no test ran')
        return 1
    if skipped:
        print('check_no_skips: %d test(s) skipped:' % len(skipped))
        for test_id in skipped:
            print('  ' + test_id)
        return 1
    print('check_no_skips: %d test(s) ran, none skipped' % ran)
    return 0


if __name__ == '__main__':
    sys.exit(main())
