"""What a host x image can be: the statuses agents report and the service
stores.

An agent reports :data:`DOWNLOADING`, then :data:`CACHED` (it wrote the
image), :data:`EXISTING` (the image was already there) or :data:`FAILED`
(with a reason). The service adds :data:`PENDING` (a cast was sent, no
answer yet) and :data:`MISSING` (the image was there and is absent from the
host's last heartbeat inventory).
"""

PENDING = 'pending'          # a cast was sent, no answer yet
DOWNLOADING = 'downloading'  # the agent started downloading
CACHED = 'cached'            # the agent landed the image
EXISTING = 'existing'        # the image was already there
FAILED = 'failed'            # the agent reported a failure
MISSING = 'missing'          # was there, absent from the last inventory

#: Every status, as stored in ``host_images.status``.
STATUSES = (PENDING, DOWNLOADING, CACHED, EXISTING, FAILED, MISSING)
#: The statuses an agent may report.
REPORTED = (DOWNLOADING, CACHED, EXISTING, FAILED)
#: The image is on the host.
PRESENT = (CACHED, EXISTING)
#: The host is working on it.
IN_PROGRESS = (PENDING, DOWNLOADING)
