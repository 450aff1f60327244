"""Tests of the Glance client helpers in :mod:`precache.common.glance`."""

from unittest import mock

from glanceclient import exc as glance_exc
from keystoneauth1 import exceptions as ks_exc

from precache.common import exception
from precache.common import glance
from precache.tests import base


class TestGetClient(base.TestCase):

    def _auth(self, auth_type, **flags):
        self.config_fixture.register_opts(glance.auth_plugin_opts(auth_type),
                                          group='glance')
        self.flags(group='glance', auth_type=auth_type, **flags)

    def test_noauth_endpoint(self):
        self._auth('none', endpoint='http://glance.test:9292')
        client = glance.get_client(self.conf)
        self.assertEqual('http://glance.test:9292',
                         client.http_client.get_endpoint())
        self.assertEqual('image', client.http_client.service_type)

    def test_password_needs_no_keystone_until_used(self):
        self._auth('password', auth_url='http://keystone.test/v3',
                   username='precache', password='secret',
                   project_name='service', user_domain_name='Default',
                   project_domain_name='Default')
        self.flags(group='glance', region_name='R1',
                   valid_interfaces=['internal'])
        client = glance.get_client(self.conf)
        self.assertEqual('R1', client.http_client.region_name)
        self.assertEqual(['internal'], client.http_client.interface)
        self.assertEqual('http://keystone.test/v3',
                         client.http_client.session.auth.auth_url)

    def test_auth_type_missing_or_unknown(self):
        exc = self.assertRaises(exception.ConfigurationError,
                                glance.get_client, self.conf)
        self.assertIn('auth_type is not set', str(exc))
        self.flags(group='glance', auth_type='no-such-plugin')
        exc = self.assertRaises(exception.ConfigurationError,
                                glance.get_client, self.conf)
        self.assertIn("'no-such-plugin' is not an installed", str(exc))


class TestImageHelpers(base.TestCase):

    def setUp(self):
        super().setUp()
        self.client = mock.Mock()

    def test_iter_image_data_bounds_chunks(self):
        self.client.images.data.return_value = iter([b'abcdefg', b'hi'])
        chunks = list(glance.iter_image_data(self.client, 'img', 3))
        self.assertEqual([b'abc', b'def', b'g', b'hi'], chunks)
        self.client.images.data.assert_called_once_with(
            'img', do_checksum=False)

    def test_iter_image_data_without_data(self):
        self.client.images.data.return_value = mock.Mock(wrapped=None)
        self.assertRaises(exception.ImageNotFound, list,
                          glance.iter_image_data(self.client, 'img', 3))

    def test_errors_translated(self):
        for error, expected, text in [
                (glance_exc.HTTPNotFound(), exception.ImageNotFound,
                 'no such image'),
                (glance_exc.HTTPForbidden(), exception.FetchFailed,
                 'check the [glance] credentials'),
                (ks_exc.ConnectFailure('refused'), exception.FetchFailed,
                 'refused')]:
            self.client.images.get.side_effect = error
            exc = self.assertRaises(expected, glance.get_image, self.client,
                                    'img')
            self.assertIn(text, str(exc))

    def test_get_image_requires_active(self):
        self.client.images.get.return_value = {'id': 'img',
                                               'status': 'saving'}
        self.assertRaises(exception.ImageNotActive, glance.get_image,
                          self.client, 'img')
        self.assertEqual('saving', glance.get_image(
            self.client, 'img', require_active=False)['status'])
