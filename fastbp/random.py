"""fastbp's random-number generator: a counter-based stream that kernels draw from.

A :class:`Generator` is two 64-bit words, ``[key, counter]``, held in a small numpy
``uint64`` array (:attr:`Generator.state_array`). A kernel that needs random numbers
(dropout: :func:`fastbp.dropout`) gets a pointer to that array, reads the key, advances
the counter by the number of 64-bit words it uses and computes word ``j`` of its call as
a hash of ``(key, counter + j)``: splitmix64 seeded with ``key`` at that position (the
exact formula is in ``fastbp_ext/_random.h`` and its numpy twin in
:func:`fastbp.backends.numpy_ops.counter_words`). Hence:

* the draws of a call vectorise and split over threads with no shared state;
* the compiled and the numpy backends draw bitwise-identical masks from equal states;
* a kernel call recorded once and replayed (a compiled step plan, ``fb.compile``) draws
  fresh numbers every time, because the counter lives in the array, not in the call;
* the state is two plain integers, so checkpointing is ``g.state`` / ``g.state = s``.

Dropout uses 32 bits per element (two elements per word): a call on ``n`` elements
advances the counter by ``ceil(n / 2)``.

The default generator
---------------------
:func:`fastbp.dropout` without ``rng`` draws from a module-level generator,
:func:`default_generator`. It is seeded from the operating system's entropy when fastbp
is imported (so, as with numpy's ``default_rng()``, runs differ unless seeded);
:func:`manual_seed` (``fb.manual_seed``, like ``torch.manual_seed``) reseeds it in place.
Its state array is never replaced, so a compiled plan that recorded it sees the reseed.

Seeds
-----
``Generator(seed)`` accepts an int >= 0, a :class:`numpy.random.SeedSequence`, a
:class:`numpy.random.Generator` or None (fresh OS entropy). Ints and seed sequences are
hashed through ``SeedSequence`` so nearby seeds give unrelated keys. A numpy Generator
is *consumed*: one 64-bit draw from it becomes the entropy of the new generator
(deterministic for a seeded numpy Generator, and it advances that generator's stream).
"""

from __future__ import annotations

import numbers
import threading

import numpy as np

__all__ = ["Generator", "default_generator", "manual_seed"]

_MASK64 = (1 << 64) - 1


def _seed_sequence(seed):
    """A :class:`numpy.random.SeedSequence` from any accepted seed."""
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(int(seed.integers(0, 2**64, dtype=np.uint64)))
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        return np.random.SeedSequence(int(seed))
    raise TypeError("seed must be an int >= 0, a numpy.random.SeedSequence, a "
                    f"numpy.random.Generator or None, got {type(seed).__name__}")


class Generator:
    """A counter-based random-number generator whose state kernels read and advance in
    place (see the module docstring for the stream).

    Parameters
    ----------
    seed : int, numpy.random.SeedSequence, numpy.random.Generator or None
        Where the key comes from: an int >= 0 or a seed sequence (hashed); a numpy
        Generator (one 64-bit draw from it is consumed); None (OS entropy, not
        reproducible). The counter starts at 0.

    Examples
    --------
    >>> g = fb.Generator(0)
    >>> h = fb.dropout(x, 0.5, rng=g)        # draws from g, advances g.state["counter"]
    >>> saved = g.state                      # {"key": ..., "counter": ...}: plain ints
    >>> g.state = saved                      # the same masks again
    """

    __slots__ = ("_state", "_seq", "_lock")

    def __init__(self, seed=None):
        self._state = np.zeros(2, np.uint64)
        self._lock = threading.Lock()
        self.manual_seed(seed)

    # ------------------------------------------------------------------ state
    @property
    def state_array(self):
        """The (2,) uint64 array ``[key, counter]`` that kernels read and advance in
        place. It is never replaced (reseeding and ``state = ...`` write into it), so a
        compiled step plan may keep its address."""
        return self._state

    @property
    def state(self):
        """``{"key": int, "counter": int}``: the whole state, as plain ints (JSON-able).
        Assigning such a dict restores it in place."""
        return {"key": int(self._state[0]), "counter": int(self._state[1])}

    @state.setter
    def state(self, value):
        try:
            key, counter = value["key"], value["counter"]
        except (TypeError, KeyError, IndexError):
            raise TypeError("state must be a dict with integer entries 'key' and 'counter', "
                            f"got {value!r}") from None
        for name, v in (("key", key), ("counter", counter)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"state[{name!r}] must be an int, got {type(v).__name__}")
            if not 0 <= v <= _MASK64:
                raise ValueError(f"state[{name!r}] must be in [0, 2**64), got {v}")
        with self._lock:
            self._state[0] = int(key)
            self._state[1] = int(counter)

    @property
    def key(self):
        return int(self._state[0])

    @property
    def counter(self):
        return int(self._state[1])

    # ------------------------------------------------------------------ seeding
    def manual_seed(self, seed):
        """Reseed in place (key from ``seed`` as in the constructor, counter 0); returns
        ``self``."""
        seq = _seed_sequence(seed)
        key = int(seq.generate_state(1, np.uint64)[0])
        with self._lock:
            self._seq = seq
            self._state[0] = key
            self._state[1] = 0
        return self

    def spawn(self, n=1):
        """``n`` new generators with independent keys, from the seed sequence of this
        generator's last seeding (``numpy.random.SeedSequence.spawn``): deterministic,
        and unaffected by how far this generator's counter has advanced."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"spawn needs an int n >= 0, got {n!r}")
        with self._lock:
            children = self._seq.spawn(int(n))
        return [Generator(s) for s in children]

    # ------------------------------------------------------------------ python
    def __repr__(self):
        s = self.state
        return f"fastbp.Generator(key={s['key']:#018x}, counter={s['counter']})"

    def __getstate__(self):
        return {"state": self.state, "seq": self._seq}

    def __setstate__(self, d):
        self._state = np.zeros(2, np.uint64)
        self._lock = threading.Lock()
        self._seq = d["seq"]
        self.state = d["state"]

    def __deepcopy__(self, memo):
        g = Generator.__new__(Generator)
        g.__setstate__(self.__getstate__())
        return g

    def __copy__(self):
        return self.__deepcopy__({})


_default = Generator()


def default_generator():
    """The module-level :class:`Generator` that :func:`fastbp.dropout` uses when it gets
    no ``rng`` (seeded from OS entropy at import; :func:`manual_seed` reseeds it)."""
    return _default


def manual_seed(seed):
    """Reseed the default generator in place (``fb.manual_seed(0)`` makes dropout calls
    without ``rng`` reproducible); returns it."""
    return _default.manual_seed(seed)
