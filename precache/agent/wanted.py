"""The images this agent has been asked to keep, for keep-alive touches."""

import threading
import time

from precache.objects import meta as meta_mod


class WantedImages(object):
    """Remembers which images were requested, and until when.

    An image stays wanted for ``expiry`` seconds after its last request,
    or until its ``pin_until`` when that is later. The service re-sends its
    requests every run, so an image the service still lists stays wanted;
    once it stops, the agent stops touching the file and Nova's own cache
    manager ages it out.
    """

    def __init__(self, expiry):
        self.expiry = expiry
        self._lock = threading.Lock()
        self._images = {}

    def add(self, image, meta, now=None):
        """Record a request for ``image`` described by ``meta``.

        :returns: False when ``meta`` is older than a request already
            seen for the image (:func:`precache.objects.meta.is_stale`:
            a lower generation of the same epoch): a stale cast never
            undoes a newer decision. A meta of another epoch (a service
            database created since) is followed.
        """
        now = time.time() if now is None else now
        with self._lock:
            known = self._images.get(image.id)
            if known and meta_mod.is_stale(meta, known['epoch'],
                                           known['generation']):
                return False
            until = now + self.expiry
            if meta.get('pin_until'):
                until = max(until, meta['pin_until'])
            self._images[image.id] = {'image': image, 'until': until,
                                      'epoch': meta['epoch'],
                                      'generation': meta['generation']}
            return True

    def current(self, now=None):
        """Return the records of the images still wanted now."""
        now = time.time() if now is None else now
        with self._lock:
            for image_id in [i for i, w in self._images.items()
                             if w['until'] < now]:
                del self._images[image_id]
            return [w['image'] for w in self._images.values()]
