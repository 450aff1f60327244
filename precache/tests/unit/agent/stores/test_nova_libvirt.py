"""The nova-libvirt store: Nova's naming, nova.conf, lock and index."""

import hashlib
import os
import textwrap

from precache.agent.stores import nova_libvirt
from precache.common import exception
from precache.tests.unit.agent.stores import test_base as helpers

NOBODY = 65534


class TestNovaConf(helpers.StoreTestCase):
    """Where the store finds Nova's image cache."""

    def write_nova_conf(self, text, name='nova.conf'):
        path = os.path.join(self.tempdir, name)
        with open(path, 'w') as conf_file:
            conf_file.write(textwrap.dedent(text))
        return path

    def store(self, text, **flags):
        conf = self.write_nova_conf(text)
        self.register_plugin_opts(nova_libvirt.NovaLibvirtStore)
        self.flags(group='nova_libvirt', nova_config_files=[conf],
                   state_dir=os.path.join(self.tempdir, 'state'), **flags)
        return nova_libvirt.NovaLibvirtStore(self.conf)

    def test_path_is_sha1_of_image_id(self):
        store = helpers.nova_store(self)
        image = helpers.make_image('9e9a8eb4-1e4c-4ef5-8e36-7b9c0d6c0f4a')
        self.assertEqual(
            os.path.join(self.tempdir, 'nova', '_base', hashlib.sha1(
                b'9e9a8eb4-1e4c-4ef5-8e36-7b9c0d6c0f4a').hexdigest()),
            store.path(image))

    def test_nova_conf_settings(self):
        store = self.store("""
            [DEFAULT]
            instances_path = /srv/nova/instances
            force_raw_images = False
            [image_cache]
            subdirectory_name = _cache
            [libvirt]
            images_type = qcow2
            """)
        self.assertEqual('/srv/nova/instances/_cache', store.cache_dir)
        self.assertFalse(store.force_raw_images)
        self.assertEqual('/srv/nova/instances/locks', store.lock_dir)

    def test_deprecated_subdirectory_name(self):
        store = self.store("""
            [DEFAULT]
            image_cache_subdirectory_name = _old
            """)
        self.assertEqual('/var/lib/nova/instances/_old', store.cache_dir)

    def test_new_subdirectory_name_wins(self):
        store = self.store("""
            [DEFAULT]
            image_cache_subdirectory_name = _old
            [image_cache]
            subdirectory_name = _new
            """)
        self.assertEqual('/var/lib/nova/instances/_new', store.cache_dir)

    def test_state_path_substitution(self):
        store = self.store("""
            [DEFAULT]
            state_path = /data/nova
            my_ip = 192.0.2.7
            [image_cache]
            subdirectory_name = _base_$my_ip
            """)
        self.assertEqual('/data/nova/instances/_base_192.0.2.7',
                         store.cache_dir)

    def test_unresolvable_variable(self):
        exc = self.assertRaises(exception.ConfigurationError, self.store, """
            [image_cache]
            subdirectory_name = _base_$my_ip
            """)
        self.assertIn("'_base_$my_ip'", str(exc))
        self.assertIn('set [nova_libvirt] subdirectory_name', str(exc))

    def test_explicit_options_override_nova_conf(self):
        store = self.store("""
            [DEFAULT]
            instances_path = /srv/nova/instances
            force_raw_images = False
            """, instances_path='/other', force_raw_images=True)
        self.assertEqual('/other/_base', store.cache_dir)
        self.assertTrue(store.force_raw_images)

    def test_read_nova_config_false(self):
        store = self.store("""
            [DEFAULT]
            instances_path = /srv/nova/instances
            [libvirt]
            images_type = rbd
            """, read_nova_config=False)
        self.assertEqual('/var/lib/nova/instances/_base', store.cache_dir)

    def test_missing_nova_conf_means_defaults(self):
        self.register_plugin_opts(nova_libvirt.NovaLibvirtStore)
        self.flags(group='nova_libvirt', nova_config_files=[
            os.path.join(self.tempdir, 'missing.conf')])
        store = nova_libvirt.NovaLibvirtStore(self.conf)
        self.assertEqual('/var/lib/nova/instances/_base', store.cache_dir)
        self.assertTrue(store.force_raw_images)

    def test_later_file_wins(self):
        first = self.write_nova_conf('[DEFAULT]\ninstances_path = /a\n',
                                     'a.conf')
        second = self.write_nova_conf('[DEFAULT]\ninstances_path = /b\n',
                                      'b.conf')
        self.assertEqual('/b', nova_libvirt.read_nova_conf(
            [first, second])['instances_path'])

    def test_rbd_refused(self):
        exc = self.assertRaises(exception.ConfigurationError, self.store, """
            [libvirt]
            images_type = rbd
            """)
        self.assertIn('images_type = rbd', str(exc))
        self.assertIn('Ceph', str(exc))

    def test_unknown_images_type_refused(self):
        exc = self.assertRaises(exception.ConfigurationError, self.store, """
            [libvirt]
            images_type = zfs
            """)
        self.assertIn("unknown [libvirt] images_type 'zfs'", str(exc))

    def test_backends_using_the_cache(self):
        for images_type in ('default', 'raw', 'flat', 'qcow2', 'lvm',
                            'ploop'):
            store = self.store('[libvirt]\nimages_type = %s\n' % images_type)
            self.assertEqual('/var/lib/nova/instances/_base',
                             store.cache_dir)

    def test_default_section_does_not_leak(self):
        # Only [libvirt] images_type counts, not a stray [DEFAULT] one.
        store = self.store("""
            [DEFAULT]
            images_type = rbd
            """)
        self.assertEqual('/var/lib/nova/instances/_base', store.cache_dir)

    def test_bad_bool(self):
        exc = self.assertRaises(exception.ConfigurationError, self.store,
                                '[DEFAULT]\nforce_raw_images = maybe\n')
        self.assertIn("invalid force_raw_images 'maybe'", str(exc))

    def test_unparsable_nova_conf(self):
        exc = self.assertRaises(exception.ConfigurationError, self.store,
                                'instances_path = /x\n')
        self.assertIn('cannot read nova configuration', str(exc))

    def test_subdirectory_must_be_one_name(self):
        self.assertRaises(exception.ConfigurationError, self.store,
                          '[image_cache]\nsubdirectory_name = a/b\n')

    def test_unknown_owner_refused(self):
        exc = self.assertRaises(
            exception.ConfigurationError, helpers.nova_store, self,
            file_owner='no-such-user-here')
        self.assertIn('no-such-user-here does not exist', str(exc))


class TestNovaStore(helpers.StoreTestCase):
    """Landing into _base as Nova would."""

    def setUp(self):
        super().setUp()
        self.store = helpers.nova_store(self)
        self.instances = os.path.join(self.tempdir, 'nova')

    def test_lock_file_is_novas(self):
        image = helpers.make_image()
        seen = []

        def write(fileobj):
            seen.extend(os.listdir(os.path.join(self.instances, 'locks')))
            fileobj.write(helpers.DATA)

        self.store.land(image, write)
        self.assertEqual(['nova-' + image.cache_name], seen)

    def test_created_directories_owned_like_instances_path(self):
        if os.geteuid() != 0:
            self.skipTest('changing a file owner needs root')
        os.chown(self.instances, NOBODY, NOBODY)
        image = helpers.make_image()
        self.store.land(image, helpers.writer(helpers.DATA))
        for path in ('_base', 'locks', 'locks/nova-' + image.cache_name,
                     '_base/' + image.cache_name):
            st = os.stat(os.path.join(self.instances, path))
            self.assertEqual((NOBODY, NOBODY), (st.st_uid, st.st_gid), path)

    def test_inventory_only_base_files(self):
        image = helpers.make_image()
        self.store.land(image, helpers.writer(helpers.DATA))
        nova_fetched = hashlib.sha1(b'fetched-by-nova').hexdigest()
        for name in (nova_fetched, nova_fetched + '_10737418240',
                     'swap_512', 'ephemeral_10_40d1d2c'):
            with open(os.path.join(self.store.cache_dir, name), 'w'):
                pass
        self.assertEqual(
            sorted([(image.cache_name, image.id), (nova_fetched, None)]),
            sorted((e['name'], e['image_id'])
                   for e in self.store.inventory()))

    def test_existing_image_is_known_but_not_counted(self):
        image = helpers.make_image()
        os.makedirs(self.store.cache_dir)
        with open(self.store.path(image), 'wb') as nova_file:
            nova_file.write(helpers.DATA)
        self.assertEqual('existing', self.store.land(
            image, helpers.writer(helpers.DATA)))
        [entry] = self.store.inventory()
        self.assertEqual(image.id, entry['image_id'])
        self.assertEqual(0, self.store.landed_bytes())

    def test_touch_learns_the_image_id(self):
        image = helpers.make_image()
        os.makedirs(self.store.cache_dir)
        with open(self.store.path(image), 'wb') as nova_file:
            nova_file.write(helpers.DATA)
        self.assertEqual([None], [e['image_id']
                                  for e in self.store.inventory()])
        self.store.touch(image)
        self.assertEqual([image.id], [e['image_id']
                                      for e in self.store.inventory()])
        self.assertEqual(0, self.store.landed_bytes())

    def test_landed_image_counted_until_nova_removes_it(self):
        image = helpers.make_image()
        self.store.land(image, helpers.writer(helpers.DATA))
        self.assertGreaterEqual(self.store.landed_bytes(), len(helpers.DATA))
        os.unlink(self.store.path(image))
        self.assertEqual([], self.store.inventory())
        # Nova fetches it again itself: precache no longer owns it.
        with open(self.store.path(image), 'wb') as nova_file:
            nova_file.write(helpers.DATA)
        self.assertEqual(0, self.store.landed_bytes())
        self.assertEqual([None], [e['image_id']
                                  for e in self.store.inventory()])

    def test_missing_instances_path(self):
        missing = os.path.join(self.tempdir, 'missing')
        self.flags(group='nova_libvirt', instances_path=missing)
        store = nova_libvirt.NovaLibvirtStore(self.conf)
        image = helpers.make_image()
        exc = self.assertRaises(exception.StoreFailed, store.land, image,
                                helpers.writer(helpers.DATA))
        self.assertIn(os.path.join(missing, 'locks'), str(exc))
        self.assertIn('No such file or directory', str(exc))
        self.assertFalse(os.path.exists(missing))
