"""The versioned payloads of the round notifications."""

import fixtures

from precache.service import notifications
from precache.tests import base


class ProgressPayloadTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.get_notifier = self.useFixture(fixtures.MockPatch(
            'precache.common.rpc.get_notifier')).mock
        self.notifier = notifications.RoundNotifier('svc')

    def progress(self, status, detail=None):
        self.notifier.progress(None, {'id': 7, 'index': 1, 'total': 2},
                               'cmp1', 'img-2', status, None, detail)
        self.get_notifier.assert_called_with('precache-service.svc')
        info = self.get_notifier.return_value.info
        _ctxt, event, payload = info.call_args[0]
        self.assertEqual(notifications.PROGRESS, event)
        self.assertEqual('1.1', payload['precache_object.version'])
        return payload['precache_object.data']

    def test_says_how_the_image_came(self):
        data = self.progress('cached', {'source': 'delta',
                                        'delta_base': 'img-1',
                                        'bytes': 1234})
        self.assertEqual(('delta', 'img-1', 1234, ['img-2']),
                         (data['source'], data['delta_base'], data['bytes'],
                          data['images_cached']))

    def test_full_download_has_no_base(self):
        data = self.progress('cached', {'source': 'http', 'bytes': 99})
        self.assertEqual(('http', None, 99),
                         (data['source'], data['delta_base'], data['bytes']))

    def test_without_detail_the_1_0_fields_remain(self):
        data = self.progress('failed')
        self.assertEqual((None, None, None, ['img-2']),
                         (data['source'], data['delta_base'], data['bytes'],
                          data['images_failed']))
