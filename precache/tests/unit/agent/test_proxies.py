"""Tests of the rendezvous ordering of cache proxies."""

import collections

from precache.agent import proxies
from precache.tests import base

PROXIES = ['http://squid%d.example.org:3128' % n for n in range(1, 5)]
HOSTS = ['cmp-%04d' % n for n in range(2000)]


class TestOrderProxies(base.TestCase):

    def test_stable_and_independent_of_listing_order(self):
        order = proxies.order_proxies('cmp-1', PROXIES)
        self.assertEqual(sorted(PROXIES), sorted(order))
        self.assertEqual(order, proxies.order_proxies('cmp-1', PROXIES))
        self.assertEqual(order,
                         proxies.order_proxies('cmp-1', PROXIES[::-1]))

    def test_known_order(self):
        # The ranking must not change between releases: a cache tree
        # would go cold on upgrade.
        self.assertEqual(
            ['http://squid1.example.org:3128',
             'http://squid2.example.org:3128',
             'http://squid4.example.org:3128',
             'http://squid3.example.org:3128'],
            proxies.order_proxies('cmp-1', PROXIES))

    def test_spreads_hosts_evenly(self):
        first = collections.Counter(
            proxies.order_proxies(host, PROXIES)[0] for host in HOSTS)
        self.assertEqual(set(PROXIES), set(first))
        expected = len(HOSTS) / len(PROXIES)
        for proxy, count in first.items():
            self.assertLess(abs(count - expected), expected * 0.15, proxy)

    def test_second_choices_spread_too(self):
        # When a proxy dies its hosts must not all land on one neighbour.
        dead = PROXIES[0]
        moved = collections.Counter(
            order[1] for order in (proxies.order_proxies(h, PROXIES)
                                   for h in HOSTS) if order[0] == dead)
        self.assertEqual(set(PROXIES[1:]), set(moved))
        expected = sum(moved.values()) / 3
        for count in moved.values():
            self.assertLess(abs(count - expected), expected * 0.3)

    def test_adding_a_proxy_moves_hosts_only_to_it(self):
        new = 'http://squid5.example.org:3128'
        moved = 0
        for host in HOSTS:
            before = proxies.order_proxies(host, PROXIES)
            after = proxies.order_proxies(host, PROXIES + [new])
            self.assertEqual(before, [p for p in after if p != new])
            if after[0] != before[0]:
                self.assertEqual(new, after[0])
                moved += 1
        self.assertLess(abs(moved - len(HOSTS) / 5), len(HOSTS) / 5 * 0.2)

    def test_removing_a_proxy_moves_only_its_hosts(self):
        gone = PROXIES[2]
        for host in HOSTS:
            before = proxies.order_proxies(host, PROXIES)
            after = proxies.order_proxies(host, [p for p in PROXIES
                                                 if p != gone])
            self.assertEqual([p for p in before if p != gone], after)

    def test_blank_and_duplicate_entries_are_dropped(self):
        self.assertEqual(['http://a:1'],
                         proxies.order_proxies('h', ['http://a:1', ' ', '',
                                                     'http://a:1 ']))
        self.assertEqual([], proxies.order_proxies('h', []))

    def test_redact(self):
        self.assertEqual('http://squid:3128',
                         proxies.redact('http://user:pw@squid:3128'))
        self.assertEqual('http://squid:3128/x?y',
                         proxies.redact('http://squid:3128/x?y'))
