"""The exception categories callers branch on."""

from precache.common import exception
from precache.tests import base

CATEGORIES = {
    exception.NotFound: [exception.ImageNotFound],
    exception.Invalid: [exception.ConfigurationError,
                        exception.PluginNotFound, exception.PluginLoadFailed,
                        exception.RPCVersionPinned, exception.InvalidMeta,
                        exception.NoVerifiableHash, exception.UnsafeImage,
                        exception.HashMismatch, exception.SizeMismatch,
                        exception.CorruptStream],
    exception.VerificationFailed: [exception.HashMismatch,
                                   exception.SizeMismatch,
                                   exception.CorruptStream],
    exception.Conflict: [exception.ImageNotActive],
    exception.TemporaryFailure: [exception.SourceFailed,
                                 exception.AllSourcesFailed,
                                 exception.FetchFailed,
                                 exception.ServeFailed,
                                 exception.Interrupted],
    exception.HostFailure: [exception.InsufficientDiskSpace,
                            exception.CacheSizeExceeded,
                            exception.StoreFailed,
                            exception.ConversionFailed],
}


class CategoryTest(base.TestCase):

    def test_every_exception_is_in_one_category(self):
        top = [exception.NotFound, exception.Invalid, exception.Conflict,
               exception.TemporaryFailure, exception.HostFailure]
        for name in dir(exception):
            cls = getattr(exception, name)
            if (not isinstance(cls, type) or
                    not issubclass(cls, exception.PrecacheException) or
                    cls is exception.PrecacheException or cls in top):
                continue
            self.assertEqual(1, sum(issubclass(cls, c) for c in top), name)

    def test_categories(self):
        for category, members in CATEGORIES.items():
            for member in members:
                self.assertTrue(issubclass(member, category),
                                '%s is not a %s' % (member.__name__,
                                                    category.__name__))

    def test_message_from_kwargs(self):
        exc = exception.ImageNotFound(image_id='img', reason='gone')
        self.assertEqual('Image img was not found: gone', str(exc))
        self.assertEqual({'image_id': 'img', 'reason': 'gone'}, exc.kwargs)
        self.assertEqual('not_found', exc.code)
