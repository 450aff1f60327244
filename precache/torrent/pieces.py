"""Which pieces an agent wants first, and which it may pass on.

Part of :mod:`precache.torrent.swarm` (see its docstring): the bands each
agent starts from (:func:`home_priorities`) and the in-order prefix among
pieces finished in any order (:class:`PieceCursor`).
"""

#: Priorities of the bands of :func:`home_priorities`, the agent's own
#: band first.
BAND_PRIORITIES = (6, 5, 4, 3)


def home_priorities(num_pieces, home):
    """Return piece priorities preferring a band that starts at ``home``.

    The torrent is cut into len(:data:`BAND_PRIORITIES`) bands, the first
    starting at piece ``home * num_pieces``; each band gets the next
    lower priority. Agents with different homes (derived from their
    host names) ask the seed for different pieces first, so the seed
    sends pieces nobody has yet instead of the same rarest pieces to
    everyone, and the agents then have something to trade.

    :param home: a number in [0, 1).
    """
    first = int(home * num_pieces) % num_pieces if num_pieces else 0
    bands = len(BAND_PRIORITIES)
    return [BAND_PRIORITIES[((i - first) % num_pieces) * bands //
                            num_pieces] for i in range(num_pieces)]


class PieceCursor(object):
    """Tracks which piece is next in order among pieces done in any order.

    :param num_pieces: pieces in the torrent.
    :param window: pieces ahead of the next one to prefer.
    """

    def __init__(self, num_pieces, window):
        self.num_pieces = num_pieces
        self.window = window
        #: The next piece to pass on.
        self.next = 0
        self._done = set()
        self._reading = False
        self._boosted = set()

    @property
    def complete(self):
        """True when every piece was passed on."""
        return self.next >= self.num_pieces

    def finished(self, piece):
        """Record that ``piece`` passed its hash check."""
        if piece >= self.next:
            self._done.add(piece)

    def take(self):
        """Return the next piece to read when it is done, else None.

        A piece is returned once; the next one only after :meth:`read`.
        """
        if self._reading or self.next not in self._done:
            return None
        self._reading = True
        return self.next

    def read(self, piece):
        """Record that ``piece``, from :meth:`take`, was passed on.

        :raises ValueError: it is not the piece being read.
        """
        if not self._reading or piece != self.next:
            raise ValueError('piece %d was read, piece %d was expected'
                             % (piece, self.next))
        self._reading = False
        self._done.discard(piece)
        self._boosted.discard(piece)
        self.next += 1

    def to_boost(self):
        """Return the window's pieces to boost, and mark them boosted.

        Those not done and not boosted yet.
        """
        end = min(self.num_pieces, self.next + self.window)
        pieces = [p for p in range(self.next, end)
                  if p not in self._done and p not in self._boosted]
        self._boosted.update(pieces)
        return pieces
