"""Tests of ``[agent] allowed_origins``: the matcher and the sources."""

import hashlib
import os

from precache.agent import origins
from precache.agent.sources import bittorrent
from precache.common import exception
from precache.objects import image as image_mod
from precache.tests import base
from precache.tests.unit.agent import test_download
from precache.torrent import metainfo


class TestMatcher(base.TestCase):

    def allows(self, prefixes, url):
        return origins.Origins(prefixes).allows(url)

    def test_empty_list_allows_everything(self):
        self.assertTrue(self.allows([], 'http://anywhere.example.com/x'))
        self.assertTrue(origins.Origins(['']).unrestricted)

    def test_scheme_host_and_default_port_are_normalised(self):
        prefixes = ['http://origin/']
        self.assertTrue(self.allows(prefixes, 'http://Origin:80/x'))
        self.assertTrue(self.allows(prefixes, 'HTTP://ORIGIN/x'))
        self.assertTrue(self.allows(['https://Swift.example.org:443'],
                                    'https://swift.example.org/v1/o'))
        self.assertFalse(self.allows(prefixes, 'http://origin:8080/x'))
        self.assertFalse(self.allows(prefixes, 'https://origin/x'))

    def test_host_must_match_exactly(self):
        prefixes = ['http://origin.example.org']
        for url in ('http://origin.example.org.evil.com/',
                    'http://evil.com/origin.example.org/',
                    'http://origin.example.org@evil.com/',
                    'http://xorigin.example.org/',
                    'http://evil.com/?http://origin.example.org/'):
            self.assertFalse(self.allows(prefixes, url), url)
        self.assertTrue(self.allows(prefixes, 'http://origin.example.org'))
        self.assertTrue(self.allows(prefixes,
                                    'http://user@origin.example.org/a'))

    def test_path_prefix_ends_at_a_segment(self):
        prefixes = ['https://swift.example.org/v1/AUTH_precache']
        self.assertTrue(self.allows(
            prefixes, 'https://swift.example.org/v1/AUTH_precache/c/o'))
        self.assertTrue(self.allows(
            prefixes, 'https://swift.example.org/v1/AUTH_precache'))
        self.assertFalse(self.allows(
            prefixes, 'https://swift.example.org/v1/AUTH_precache2/c/o'))
        self.assertFalse(self.allows(
            prefixes, 'https://swift.example.org/v1/AUTH_other/c/o'))
        self.assertFalse(self.allows(
            prefixes, 'https://swift.example.org/v1/AUTH_precache/../'
                      'AUTH_other/o'))
        self.assertTrue(self.allows(['http://o/images/'], 'http://o/images/'
                                    'a/./b'))

    def test_ports_and_ipv6(self):
        self.assertTrue(self.allows(['http://[::1]:8780/'],
                                    'http://[::1]:8780/x'))
        self.assertFalse(self.allows(['http://[::1]:8780/'],
                                     'http://[::2]:8780/x'))
        self.assertTrue(self.allows(['bittorrent://seed'],
                                    origins.peer_url('seed:6881')))
        self.assertTrue(self.allows(['bittorrent://seed:6881/'],
                                    origins.peer_url('SEED:6881')))
        self.assertFalse(self.allows(['bittorrent://seed:6881/'],
                                     origins.peer_url('seed:6882')))
        self.assertFalse(self.allows(['http://seed:6881/'],
                                     origins.peer_url('seed:6881')))

    def test_unparsable_urls_are_refused(self):
        for url in ('not a url', 'http://o:99999/', '/relative', ''):
            self.assertFalse(self.allows(['http://o/'], url), url)

    def test_bad_prefix_is_an_error(self):
        self.assertRaises(ValueError, origins.Origins, ['origin.example'])

    def test_refusal_names_the_host(self):
        exc = self.assertRaises(
            origins.Refused,
            origins.Origins(['http://origin/']).check,
            'http://Evil.example.com/x?temp_url_sig=secret', 'a web seed\'s')
        self.assertIn('evil.example.com', str(exc))
        self.assertIn('allowed_origins', str(exc))
        self.assertNotIn('secret', str(exc))


class TestHTTPSourceOrigins(test_download.DownloadTestCase):

    def setUp(self):
        super().setUp()
        self.foreign = self.useFixture(test_download.HTTPServerFixture())
        # Another host name for the same loopback address.
        self.foreign_url = self.foreign.url.replace('127.0.0.1',
                                                    'localhost')

    def allow(self, *urls):
        self.flags(group='agent',
                   allowed_origins=[url + '/' for url in urls])

    def test_foreign_source_is_refused_without_connecting(self):
        self.allow(self.httpd.url)
        foreign = self.source()
        foreign['url'] = foreign['url'].replace(self.httpd.url,
                                                self.foreign_url)
        self.foreign.add('/image.zst', b'never served')
        exc = self.assertFails(foreign)
        self.assertIn('localhost', str(exc))
        self.assertIn('allowed_origins', str(exc))
        self.assertEqual([], self.foreign.requests)
        self.assertEqual([], self.httpd.requests)

    def test_next_source_is_tried_after_a_refusal(self):
        self.allow(self.httpd.url)
        good = self.source()
        foreign = dict(good, url=self.foreign_url + '/image.zst')
        result = self.download(foreign, good)
        self.assertEqual(good['url'], result['locator'])
        self.assertEqual([], self.foreign.requests)

    def test_redirect_to_foreign_host_is_not_followed(self):
        self.allow(self.httpd.url)
        good = self.source()
        artifact = self.httpd.server.artifacts['/image.zst']
        self.foreign.add('/image.zst', artifact.data)
        self.httpd.add('/moved.zst', b'',
                       location=self.foreign_url + '/image.zst')
        exc = self.assertFails(dict(good, url=self.httpd.url + '/moved.zst'))
        self.assertIn('redirect', str(exc))
        self.assertIn('localhost', str(exc))
        self.assertEqual([], self.foreign.requests)
        self.assertEqual(1, len(self.httpd.requests))

    def test_allowed_redirects_are_followed(self):
        self.allow(self.httpd.url, self.foreign_url)
        good = self.source()
        artifact = self.httpd.server.artifacts['/image.zst']
        self.foreign.add('/image.zst', artifact.data)
        self.httpd.add('/moved.zst', b'', location='/moved-again.zst')
        self.httpd.add('/moved-again.zst', b'',
                       location=self.foreign_url + '/image.zst')
        self.download(dict(good, url=self.httpd.url + '/moved.zst'))
        self.assertEqual(1, len(self.foreign.requests))

    def test_redirect_loops_end(self):
        good = self.source()
        self.httpd.add('/loop.zst', b'', location='/loop.zst')
        exc = self.assertFails(dict(good, url=self.httpd.url + '/loop.zst'))
        self.assertIn('redirects', str(exc))

    def test_no_restriction_by_default(self):
        good = self.source()
        self.download(dict(good, url=good['url'].replace(
            '127.0.0.1', 'localhost')))


class TestBitTorrentOrigins(base.TestCase):

    def setUp(self):
        super().setUp()
        path = os.path.join(self.tempdir, 'image.zst')
        with open(path, 'wb') as f:
            f.write(os.urandom(40000))
        torrent = metainfo.make_torrent(
            path, metainfo.MIN_PIECE_SIZE,
            web_seeds=['http://origin.example.org:8780/image.zst'],
            trackers=['http://origin.example.org:6969/announce'])
        self.params = metainfo.load(metainfo.encode(torrent))
        self.source = {'method': 'bittorrent',
                       'peers': ['origin.example.org:6881'],
                       'inject_url': 'http://origin.example.org:6969/inject'}
        self.plugin = bittorrent.BitTorrentSource(self.conf)
        self.image = image_mod.ImageRecord.from_dict({
            'id': 'img-1', 'disk_format': 'raw', 'size': 1,
            'checksum': hashlib.md5(b'x').hexdigest()})

    def check(self, *prefixes):
        self.flags(group='agent', allowed_origins=list(prefixes))
        self.plugin._check_origins(self.image, self.source, self.params)

    def test_everything_allowed(self):
        self.check()
        self.check('http://origin.example.org:8780/',
                   'http://origin.example.org:6969/',
                   'bittorrent://origin.example.org:6881/')

    def test_each_kind_of_url_is_checked(self):
        all_ = ['http://origin.example.org:8780/',
                'http://origin.example.org:6969/',
                'bittorrent://origin.example.org:6881/']
        for missing, what in ((0, 'web seed'), (1, 'tracker'),
                              (2, 'peer')):
            prefixes = [p for n, p in enumerate(all_) if n != missing]
            exc = self.assertRaises(exception.SourceFailed, self.check,
                                    *prefixes)
            self.assertIn(what, str(exc))
            self.assertIn('origin.example.org', str(exc))
        self.source['inject_url'] = 'http://evil.example.com/inject'
        exc = self.assertRaises(exception.SourceFailed, self.check, *all_)
        self.assertIn('inject_url', str(exc))
        self.assertIn('evil.example.com', str(exc))
