"""Tests of the ``static`` lister with a fake Glance client."""

from unittest import mock

import fixtures
from glanceclient import exc as glance_exc

from precache.common import exception
from precache.service.listers import static
from precache.tests import base


def _image(image_id, status='active'):
    return {'id': image_id, 'status': status, 'size': 3,
            'disk_format': 'raw', 'os_hash_algo': 'sha512',
            'os_hash_value': 'ab' * 64}


class TestStaticLister(base.TestCase):

    def setUp(self):
        super().setUp()
        self.register_plugin_opts(static.StaticLister)
        self.images = {'a': _image('a'), 'q': _image('q', status='queued')}
        self.client = mock.Mock()
        self.client.images.get.side_effect = self._get
        self.lister = static.StaticLister(self.conf, client=self.client)

    def _get(self, image_id):
        try:
            return self.images[image_id]
        except KeyError:
            raise glance_exc.HTTPNotFound()

    def test_lists_known_active_images(self):
        self.flags(group='static_lister', image_ids=['a', 'a'])
        records = self.lister.list()
        self.assertEqual(['a'], [r.id for r in records])
        self.assertEqual('ab' * 64, records[0].os_hash_value)
        self.assertEqual(['static'], records[0].listed_by)
        self.client.images.get.assert_called_once_with('a')

    def test_missing_and_inactive_skipped_with_warning(self):
        self.flags(group='static_lister', image_ids=['gone', 'q', 'a'])
        logs = self.useFixture(
            fixtures.FakeLogger(name='precache.service.listers.static'))
        self.assertEqual(['a'], [r.id for r in self.lister.list()])
        self.assertIn('gone', logs.output)
        self.assertIn('was not found', logs.output)
        self.assertIn('q is not active (status queued)', logs.output)

    def test_glance_unreachable_fails_listing(self):
        self.flags(group='static_lister', image_ids=['a'])
        self.client.images.get.side_effect = (
            glance_exc.CommunicationError('connection refused'))
        exc = self.assertRaises(exception.FetchFailed, self.lister.list)
        self.assertIn('connection refused', str(exc))
