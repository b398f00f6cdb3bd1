# cython: language_level=3
"""Compiled step plans: record the kernel calls of a traced step and replay them.

A :class:`Plan` is a C array of :c:type:`Step` records (a kernel and a copy of its
:c:type:`Call`). While a plan records (:meth:`Plan.start` ... :meth:`Plan.stop`), every
successful ``launch`` of any kernel module appends its call, and numpy allocates array
data through the plan's arena (a NEP 49 memory handler, ``_arena.h``): a buffer that numpy
frees while the plan is alive is held back, so every pointer the recorded calls hold stays
valid for the plan's life. :meth:`Plan.run` replays the calls in one ``nogil`` loop, with
no Python between kernels and no allocation; a Python callback step (a custom
``fastbp.Function``) takes the GIL for its own duration only.

This module is the mechanism; ``fastbp.compile`` (``fastbp/jit.py``) is the policy: what
a signature is, how inputs are bound and outputs returned.
"""

cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_IsValid
from cpython.pythread cimport PyThread_get_thread_ident
from libc.stdlib cimport free
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from fastbp_ext._common cimport (
    Call, Kernel, Step, Recording, run, record, set_recording, active_recording,
    KERR_OK, KERR_NOMEM, KERR_INDEX,
)

cnp.import_array()

cdef extern from "_arena.h":
    ctypedef struct fb_arena:
        int deferring
        size_t n
        size_t bytes_held
        size_t bytes_live
    object fb_arena_new()
    fb_arena* fb_arena_of(object cap)
    void fb_arena_release(fb_arena* a)

cdef extern from "numpy/arrayobject.h":
    object PyDataMem_SetHandler(object handler)
    object PyDataMem_GetHandler()

__all__ = ["Plan", "callback", "recording", "pause", "resume"]

cdef Plan _current = None   # the plan recording now (one at a time per process)


def recording():
    """True while a plan is recording (a step is being traced)."""
    return active_recording() != NULL


def callback(fn):
    """Record a Python callable as a step of the plan that is recording (a custom
    ``fastbp.Function``'s forward or backward, re-run on every replay). No-op when no
    plan records."""
    if _current is None:
        return
    _current._callbacks.append(fn)
    record(NULL, NULL, -1, NULL, 0, len(_current._callbacks) - 1)


cdef bint _is_check(Step* st) noexcept:
    return st.k.name in (b"check_ids", b"check_labels")


cdef bint _checked(Step* steps, Py_ssize_t n, Step* st) noexcept:
    """Does one of the first ``n`` steps check the same ids against the same bound? (A
    plan's id buffers are written only when a call binds its inputs.)"""
    cdef Py_ssize_t i
    for i in range(n):
        if (steps[i].k == st.k and steps[i].c.a[0] == st.c.a[0]
                and steps[i].c.n[0] == st.c.n[0] and steps[i].c.n[1] == st.c.n[1]
                and steps[i].c.n[2] == st.c.n[2]):
            return True
    return False


cdef class Plan:
    """The recorded kernel calls of one traced step (see the module docstring)."""

    cdef Recording rec
    cdef list _callbacks
    cdef object _arena          # the NEP 49 handler capsule
    cdef object _saved_handler
    cdef bint _recording
    cdef bint _closed

    def __cinit__(self):
        self.rec.steps = NULL
        self.rec.n = self.rec.cap = 0
        self.rec.side = NULL
        self.rec.nside = self.rec.capside = 0
        self._callbacks = []
        self._arena = None
        self._recording = False
        self._closed = False

    def __dealloc__(self):
        free(self.rec.steps)
        free(self.rec.side)
        if self._arena is not None and PyCapsule_IsValid(self._arena, "mem_handler"):
            fb_arena_release(fb_arena_of(self._arena))

    # ------------------------------------------------------------------ recording
    def start(self):
        """Begin recording: later launches are appended and numpy allocates from this
        plan's arena (until :meth:`stop`)."""
        global _current
        if self._closed or self._recording or self.rec.n:
            raise RuntimeError("a plan records once")
        if _current is not None or active_recording() != NULL:
            raise RuntimeError("fastbp.compile: a step is already being traced (compiled "
                               "steps cannot be traced inside one another)")
        self._arena = fb_arena_new()
        self._saved_handler = PyDataMem_SetHandler(self._arena)
        self.rec.owner = PyThread_get_thread_ident()
        set_recording(&self.rec)
        _current = self
        self._recording = True

    def stop(self):
        """End recording; point each call's side record into the plan's own copy."""
        global _current
        if not self._recording:
            return
        set_recording(NULL)
        _current = None
        PyDataMem_SetHandler(self._saved_handler)
        self._saved_handler = None
        self._recording = False
        cdef Py_ssize_t i, j, kept = 0
        cdef Step* st
        for i in range(self.rec.n):
            st = &self.rec.steps[i]
            if st.side >= 0:
                st.c.a[st.slot] = self.rec.side + st.side
            if st.k != NULL and st.k.name[0] == b"c" and _is_check(st) and _checked(
                    self.rec.steps, kept, st):
                continue  # the same ids were checked earlier in this replay
            if kept != i:
                self.rec.steps[kept] = self.rec.steps[i]
            kept += 1
        self.rec.n = kept

    def abandon(self):
        """Stop recording (if it is) and release the arena: a failed trace."""
        self.stop()
        self._closed = True
        if self._arena is not None:
            fb_arena_release(fb_arena_of(self._arena))

    # ------------------------------------------------------------------ replay
    def run(self):
        """Replay every recorded call in order, without the GIL between kernels."""
        cdef Py_ssize_t i = 0, n = self.rec.n
        cdef Step* steps = self.rec.steps
        cdef int err = KERR_OK
        if self._recording or self._closed:
            raise RuntimeError("this plan is not ready to run")
        while i < n:
            with nogil:
                while i < n and steps[i].k != NULL:
                    err = run(steps[i].k, &steps[i].c)
                    if err != KERR_OK:
                        break
                    i += 1
            if err != KERR_OK:
                self._raise(i, err)
            if i < n:
                self._callbacks[steps[i].cb]()
                i += 1

    cdef int _raise(self, Py_ssize_t i, int err) except -1:
        cdef Step* st = &self.rec.steps[i]
        cdef Call* c = &st.c
        name = st.k.name.decode()
        cdef Py_ssize_t v
        if err == KERR_INDEX and name in ("check_ids", "check_labels"):
            if c.n[2]:
                v = (<cnp.int32_t*>c.a[0])[c.info]
            else:
                v = (<cnp.int64_t*>c.a[0])[c.info]
            if name == "check_labels":
                raise ValueError(f"class id {v} is outside [0, {c.n[1]})")
            raise IndexError(f"id {v} (position {c.info}) is out of range for a table of "
                             f"{c.n[1]} rows")
        if err == KERR_NOMEM:
            raise MemoryError(f"kernel {name}: out of memory for its scratch space")
        if err == KERR_INDEX:
            raise IndexError(f"kernel {name}: index at position {c.info} is out of range")
        raise RuntimeError(f"kernel {name} failed with error code {err}")

    def profile(self, int repeats=100):
        """Time each step over ``repeats`` replays: a list of ``(kernel name, seconds per
        replay)`` in plan order (callbacks appear as ``"python"``). The plan's effects are
        applied ``repeats`` times."""
        cdef Py_ssize_t i, n = self.rec.n
        cdef int r, err
        cdef timespec t0, t1
        cdef Step* steps = self.rec.steps
        tot = [0.0] * n
        for r in range(repeats):
            for i in range(n):
                clock_gettime(CLOCK_MONOTONIC, &t0)
                if steps[i].k == NULL:
                    self._callbacks[steps[i].cb]()
                else:
                    with nogil:
                        err = run(steps[i].k, &steps[i].c)
                    if err != KERR_OK:
                        self._raise(i, err)
                clock_gettime(CLOCK_MONOTONIC, &t1)
                tot[i] += (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec)
        return [(self._name(i), tot[i] / repeats) for i in range(n)]

    cdef str _name(self, Py_ssize_t i):
        return "python" if self.rec.steps[i].k == NULL else self.rec.steps[i].k.name.decode()

    def kernel_names(self):
        """The names of the recorded steps, in order."""
        return [self._name(i) for i in range(self.rec.n)]

    def __len__(self):
        return self.rec.n

    @property
    def arena_bytes(self):
        """``(live, held)``: bytes of arena buffers still referenced by numpy arrays, and
        bytes of freed intermediates the plan holds on to."""
        if self._arena is None:
            return (0, 0)
        cdef fb_arena* a = fb_arena_of(self._arena)
        return (a.bytes_live, a.bytes_held)


cdef Recording* _paused = NULL


def pause():
    """Suspend the recording in progress (for Python code that a callback step re-runs:
    its kernels must not be recorded as well). Returns True when one was suspended."""
    global _paused
    cdef Recording* r = active_recording()
    if r == NULL:
        return False
    _paused = r
    set_recording(NULL)
    return True


def resume():
    """Resume the recording suspended by :func:`pause`."""
    global _paused
    if _paused != NULL:
        set_recording(_paused)
        _paused = NULL
