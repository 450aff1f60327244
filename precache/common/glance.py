"""Talking to Glance: a client built from ``[glance]`` and error mapping.

The service's glance lister and fetcher and the agent's glance source all
use these helpers, so that every Glance failure reaches the operator as a
precache exception saying which image failed and what to check.

The client is a glanceclient v2 ``Client`` on a keystoneauth1 session: any
keystoneauth1 auth plugin works, e.g. ``auth_type = password`` against
Keystone in production, or ``auth_type = none`` plus ``endpoint`` for a
Glance without Keystone.
"""

import contextlib

import glanceclient
from glanceclient import exc as glance_exc
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from keystoneauth1.loading import adapter as ks_adapter
from oslo_log import log as logging
import requests

from precache.common import exception
from precache.conf import glance as glance_conf

LOG = logging.getLogger(__name__)

API_VERSION = '2'
GROUP = glance_conf.GROUP


def auth_plugin_opts(auth_type, group=GROUP):
    """Return the oslo.config options of a keystoneauth1 auth plugin.

    :param auth_type: the plugin's name, e.g. ``password`` or ``none``.
    :param group: the option group it is configured in (for messages).
    :raises ConfigurationError: no such keystoneauth1 plugin is installed.
    """
    try:
        return ks_loading.get_auth_plugin_conf_options(auth_type)
    except ks_exc.NoMatchingPlugin:
        raise exception.ConfigurationError(
            reason='[%s] auth_type %r is not an installed keystoneauth1 '
                   'auth plugin (e.g. password, v3applicationcredential, '
                   'none)' % (group, auth_type))


def register_auth_opts(conf, group=GROUP):
    """Register the options of the configured keystoneauth1 auth plugin.

    keystoneauth1 registers a plugin's own options (``auth_url`` and
    ``password`` for ``password``, ``endpoint`` for ``none``, ...) only
    while it loads the plugin, so they can be neither read nor overridden
    before. :func:`get_client` calls this first; call it yourself, or
    register :func:`auth_plugin_opts` (as tests do, through their config
    fixture), to set such options programmatically. Registering twice is
    harmless.

    :param conf: the ConfigOpts holding ``group``.
    :param group: the option group naming the plugin (``auth_type``).
    :raises ConfigurationError: ``auth_type`` names no installed plugin.
    """
    section = conf[group].auth_section or group
    name = conf[section].auth_type
    if name:
        conf.register_opts(auth_plugin_opts(name, section), group=section)


def get_client(conf, group=GROUP, **kwargs):
    """Return a glanceclient v2 client configured by ``[glance]``.

    The session (TLS, timeout), the auth plugin and the endpoint selection
    (``service_type``, ``valid_interfaces``, ``region_name``,
    ``endpoint_override``, retries) all come from ``group``. Nothing is
    sent to Keystone or Glance before the first request.

    :param conf: the ConfigOpts holding ``group``.
    :param group: the option group to read, ``glance`` by default.
    :param kwargs: keystoneauth1 ``Adapter`` arguments overriding the
        configured ones, e.g. ``global_request_id``.
    :raises ConfigurationError: the options do not make a usable client.
    """
    register_auth_opts(conf, group)
    try:
        auth = ks_loading.load_auth_from_conf_options(conf, group)
        session = ks_loading.load_session_from_conf_options(conf, group,
                                                            auth=auth)
        ks_adapter.process_conf_options(conf[group], kwargs)
        # glanceclient puts /v2 in every URL itself: no version discovery.
        for name in ('version', 'min_version', 'max_version'):
            kwargs.pop(name, None)
        # Unset options leave glanceclient's defaults (service_type image).
        kwargs = {name: value for name, value in kwargs.items()
                  if value is not None}
    except (ks_exc.ClientException, TypeError, ValueError) as exc:
        raise exception.ConfigurationError(
            reason='the [%s] options do not make a Glance client: %s'
                   % (group, exc))
    if auth is None:
        raise exception.ConfigurationError(
            reason='[%s] auth_type is not set; set it to a keystoneauth1 '
                   'auth plugin (password, ...) or to none together with '
                   'endpoint' % group)
    return glanceclient.Client(API_VERSION, session=session, **kwargs)


def _image_id(image):
    """Return the id of an image given as an id, a record or a dict."""
    if isinstance(image, str):
        return image
    if isinstance(image, dict):
        return image['id']
    return image.id


@contextlib.contextmanager
def translate_errors(image_id):
    """Turn glanceclient/keystoneauth1 errors about an image into ours.

    :raises ImageNotFound: Glance answered 404.
    :raises FetchFailed: any other Glance, Keystone or network failure,
        with a reason saying what to check.
    """
    try:
        yield
    except glance_exc.HTTPNotFound:
        raise exception.ImageNotFound(
            image_id=image_id,
            reason='Glance has no such image, or it is not visible to the '
                   'project of the [glance] credentials')
    except (glance_exc.HTTPUnauthorized, glance_exc.HTTPForbidden,
            ks_exc.Unauthorized, ks_exc.Forbidden,
            ks_exc.AuthorizationFailure) as exc:
        raise exception.FetchFailed(
            image_id=image_id,
            reason='Glance or Keystone refused the request (%s); check the '
                   '[glance] credentials and that their project may use '
                   'the image' % _describe(exc))
    except (glance_exc.BaseException, glance_exc.ClientException,
            ks_exc.ClientException, requests.RequestException,
            OSError) as exc:
        raise exception.FetchFailed(
            image_id=image_id,
            reason='Glance request failed: %s' % _describe(exc))


def _describe(exc):
    """Return a one-line description of a client library exception."""
    text = str(exc).strip() or exc.__class__.__name__
    return ' '.join(text.split())


def get_image(client, image_id, require_active=True):
    """Return Glance's view of one image.

    :param client: a glanceclient v2 client (see :func:`get_client`).
    :param image_id: the image's id.
    :param require_active: refuse an image whose status is not ``active``.
    :returns: the image, a dict-like glanceclient model.
    :raises ImageNotFound: Glance does not know the image (for this
        project).
    :raises ImageNotActive: ``require_active`` and the image is queued,
        saving, deactivated, ...
    :raises FetchFailed: Glance or Keystone failed or refused.
    """
    with translate_errors(image_id):
        image = client.images.get(image_id)
    status = image.get('status')
    if require_active and status != 'active':
        raise exception.ImageNotActive(image_id=image_id, status=status)
    return image


def list_images(client, filters, page_size=None, limit=None):
    """Yield the images Glance lists for ``filters``.

    :param client: a glanceclient v2 client (see :func:`get_client`).
    :param filters: Glance's query filters, e.g. ``{'status': 'active',
        'tag': ['golden'], 'owner': project_id}``.
    :param page_size: images requested per page; glanceclient's default
        when ``None``.
    :param limit: stop after this many images; no limit when ``None``.
    :raises PrecacheException: listing failed; the message says why.
    """
    kwargs = {'filters': dict(filters)}
    if page_size:
        kwargs['page_size'] = page_size
    if limit:
        kwargs['limit'] = limit
    try:
        yield from client.images.list(**kwargs)
    except (glance_exc.BaseException, glance_exc.ClientException,
            ks_exc.ClientException, requests.RequestException,
            OSError) as exc:
        raise exception.PrecacheException(
            'Listing images in Glance with filters %s failed: %s. Check '
            'the [glance] options and that Glance and Keystone are '
            'reachable.' % (filters, _describe(exc)))


def iter_image_data(client, image, chunk_size):
    """Yield an image's bytes as Glance streams them.

    The bytes are not verified here: callers hash them against the
    image's ``os_hash_value`` themselves (see :mod:`precache.common.verify`).

    :param client: a glanceclient v2 client (see :func:`get_client`).
    :param image: the image's id, an
        :class:`~precache.objects.image.ImageRecord` or a Glance image.
    :param chunk_size: no chunk yielded is larger than this many bytes.
    :raises ImageNotFound: Glance has no such image or no data for it.
    :raises FetchFailed: the download failed or was cut off.
    """
    image_id = _image_id(image)
    with translate_errors(image_id):
        body = client.images.data(image_id, do_checksum=False)
        if getattr(body, 'wrapped', body) is None:
            raise exception.ImageNotFound(
                image_id=image_id,
                reason='Glance holds no data for it (no upload yet?)')
        for chunk in body:
            for start in range(0, len(chunk), chunk_size):
                yield chunk[start:start + chunk_size]


class ClientMixin(object):
    """For plugins talking to Glance: ``self.glance`` is a client.

    Put it before the plugin base class. The client is built from
    ``[glance]`` on first use, unless one is given.

    :param conf: the process's ConfigOpts.
    :param client: a glanceclient v2 client to use instead (e.g. one
        shared by the caller, or a fake in tests).
    """

    def __init__(self, conf, client=None, **kwargs):
        super().__init__(conf, **kwargs)
        self._glance_client = client

    @property
    def glance(self):
        """The glanceclient v2 client of this plugin."""
        if self._glance_client is None:
            self._glance_client = get_client(self.conf)
        return self._glance_client
