"""Tests of the ``glance`` lister with a fake Glance client."""

from unittest import mock

import fixtures
from glanceclient import exc as glance_exc

from precache.common import exception
from precache.service.listers import glance as glance_lister
from precache.tests import base


def _image(image_id, **fields):
    image = {'id': image_id, 'status': 'active', 'tags': [],
             'owner': 'p1', 'visibility': 'public', 'size': 3,
             'os_hash_algo': 'sha512', 'os_hash_value': 'ab' * 64}
    image.update(fields)
    return image


class TestGlanceLister(base.TestCase):
    """The fake Glance ignores filters: the lister must check them too."""

    def setUp(self):
        super().setUp()
        self.register_plugin_opts(glance_lister.GlanceLister)
        self.images = [
            _image('plain'),
            _image('golden', tags=['golden', 'linux'], os_distro='ubuntu',
                   hw_qemu_guest_agent=True),
            _image('theirs', owner='p2', visibility='shared',
                   tags=['golden']),
            _image('queued', status='queued', tags=['golden']),
        ]
        self.client = mock.Mock()
        self.client.images.list.side_effect = (
            lambda **kw: iter(self.images))
        self.lister = glance_lister.GlanceLister(self.conf,
                                                 client=self.client)

    def _ids(self, **flags):
        self.flags(group='glance_lister', **flags)
        return sorted(r.id for r in self.lister.list())

    def _filters(self):
        return [c.kwargs['filters']
                for c in self.client.images.list.call_args_list]

    def test_defaults_list_every_active_image(self):
        self.assertEqual(['golden', 'plain', 'theirs'], self._ids())
        self.assertEqual([{'status': 'active', 'visibility': 'all'}],
                         self._filters())
        self.assertEqual(100, self.client.images.list.call_args.kwargs[
            'page_size'])

    def test_tags(self):
        self.assertEqual(['golden'], self._ids(tags=['golden', 'linux']))
        self.assertEqual(['golden', 'linux'], self._filters()[0]['tag'])

    def test_properties(self):
        self.assertEqual(['golden'], self._ids(properties={
            'os_distro': 'ubuntu', 'hw_qemu_guest_agent': 'true'}))
        self.assertEqual('ubuntu', self._filters()[0]['os_distro'])

    def test_owners_one_query_each(self):
        self.assertEqual(['golden', 'plain', 'theirs'],
                         self._ids(owners=['p1', 'p2']))
        self.assertEqual(['p1', 'p2'],
                         [f['owner'] for f in self._filters()])

    def test_visibility(self):
        self.assertEqual(['theirs'], self._ids(visibility='shared'))
        self.assertEqual('shared', self._filters()[0]['visibility'])

    def test_records(self):
        self.flags(group='glance_lister', tags=['linux'])
        [record] = self.lister.list()
        self.assertEqual(('golden', ['glance'], 'ab' * 64),
                         (record.id, record.listed_by, record.os_hash_value))

    def test_limit_cuts_with_warning(self):
        logs = self.useFixture(
            fixtures.FakeLogger(name='precache.service.listers.glance'))
        self.assertEqual(2, len(self._ids(limit=2)))
        self.assertEqual(3, self.client.images.list.call_args.kwargs[
            'limit'])
        self.assertIn('only 2 are pre-cached', logs.output)

    def test_glance_failure(self):
        self.client.images.list.side_effect = (
            glance_exc.HTTPServiceUnavailable('try later'))
        exc = self.assertRaises(exception.PrecacheException,
                                self.lister.list)
        self.assertIn('try later', str(exc))
