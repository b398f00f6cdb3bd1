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
from libc.string cimport memcpy
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from fastbp_ext._common cimport (
    floating, Call, Kernel, Step, Recording, run, record, set_recording, active_recording,
    KERR_OK, KERR_NOMEM, KERR_INDEX, F32, threads_for, PAR_ARITH, CALL_NA, CALL_NN,
)
from fastbp_ext._simd cimport fastbp_rank1_f, fastbp_rank1_d
from cython.parallel cimport prange
from fastbp_ext._blas cimport gemm_rm
from fastbp_ext._activations cimport bias_act_kernel, act_code
from fastbp_ext._elementwise cimport row_bias

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
    int fb_arena_holds(const fb_arena* a, const void* p, size_t nbytes)

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


# ---------------------------------------------------------------- plan-level fusion
cdef int k_gemm_sgd(floating* out, Call* c) noexcept nogil:
    # The weight gradient and the SGD update in one pass over W: out += alpha op(A) op(B)
    # (a: A, B; n: M, N, K, trans_a, trans_b as k_gemm; s: -, alpha). With K == 1 (a
    # batch of one) it is a rank-1 update: both operands are contiguous vectors.
    cdef floating alpha = <floating>c.s[1], one = 1
    if c.n[2] == 1:
        rank1(c.n[0], c.n[1], alpha, <floating*>c.a[0], <floating*>c.a[1], out)
    else:
        gemm_rm(<bint>c.n[3], <bint>c.n[4], <int>c.n[0], <int>c.n[1], <int>c.n[2], alpha,
                <floating*>c.a[0], <floating*>c.a[1], one, out)
    return 0


cdef void rank1(Py_ssize_t M, Py_ssize_t N, floating alpha, const floating* x,
                const floating* y, floating* W) noexcept nogil:
    """W (M, N) += alpha x y^T in one pass (rows split over the kernel threads when W is
    large: see fastbp_ext._common.threads_for)."""
    cdef int nt = threads_for(M * N * sizeof(floating), PAR_ARITH)
    cdef Py_ssize_t t, chunk, lo, hi
    if nt == 1 or M < nt:
        if floating is float:
            fastbp_rank1_f(0, M, N, alpha, x, y, W)
        else:
            fastbp_rank1_d(0, M, N, alpha, x, y, W)
        return
    chunk = (M + nt - 1) // nt
    for t in prange(nt, num_threads=nt, schedule="static"):
        lo = t * chunk
        hi = lo + chunk if lo + chunk < M else M
        if floating is float:
            fastbp_rank1_f(lo, hi, N, alpha, x, y, W)
        else:
            fastbp_rank1_d(lo, hi, N, alpha, x, y, W)


# Fuse only products over at most this many rows (the batch): measured 2026-12-02 on
# the PERF.md step, the fused update wins at B=1 (rank-1: 1.1-1.3x the step) and B=32
# (lecture 1.20x, large 1.03x) and loses 1-3% from B=256 on, where OpenBLAS's gemm with
# beta=1 into the weight runs slower than into a fresh buffer and W's extra pass is
# negligible beside the product.
cdef Py_ssize_t FUSE_MAX_K = 128


cdef Kernel K_GEMM_SGD = Kernel(b"gemm_sgd", k_gemm_sgd[float], k_gemm_sgd[double])


cdef inline bint _in(void* p, char* lo, char* hi) noexcept:
    return lo <= <char*>p < hi


cdef bint _touches(Step* st, char* lo, char* hi) noexcept:
    """Might step ``st`` read or write the byte range [lo, hi)? (Conservative: every
    pointer slot is compared, used or not.)"""
    cdef int s
    if st.k == NULL:
        return True  # a Python callback may read anything
    if _in(st.c.out, lo, hi):
        return True
    for s in range(8):
        if _in(st.c.a[s], lo, hi):
            return True
    return False


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

    def fuse_weight_updates(self, dead):
        """Fuse ``dW = op(A) op(B)`` (a gemm) followed by ``sgd_update(W, dW)`` into one
        ``W -= lr op(A) op(B)`` (one pass over W; a rank-1 update at batch size 1) for
        each gradient buffer in ``dead`` that nothing else in the plan reads and that
        nobody observes after a call. Returns the number of fusions."""
        cdef Py_ssize_t i, j, k, n, fused = 0
        cdef Step* st
        cdef char* lo
        cdef char* hi
        cdef char* alo
        cdef char* ahi
        cdef char* blo
        cdef char* bhi
        cdef Py_ssize_t isz, M, N, K
        cdef cnp.ndarray d
        if self._recording or self._closed:
            raise RuntimeError("fuse a finished plan")
        for d in dead:
            n = self.rec.n
            lo = <char*>cnp.PyArray_DATA(d)
            hi = lo + cnp.PyArray_NBYTES(d)
            j = i = -1
            for k in range(n):
                st = &self.rec.steps[k]
                if not _touches(st, lo, hi):
                    continue
                if st.k == NULL:
                    j = -2  # a Python callback may read it
                    break
                if (j < 0 and st.k.name == b"gemm" and st.c.out == <void*>lo
                        and st.c.s[0] == 0.0):
                    j = k
                elif (j >= 0 and i < 0 and st.k.name == b"sgd_update"
                        and st.c.a[0] == <void*>lo
                        and st.c.n[0] * (4 if st.c.dtype == F32 else 8) == hi - lo):
                    i = k
                else:
                    j = -2  # something else uses the buffer
                    break
            if j < 0 or i < 0:
                continue
            st = &self.rec.steps[j]
            isz = 4 if st.c.dtype == F32 else 8
            M, N, K = st.c.n[0], st.c.n[1], st.c.n[2]
            if K > FUSE_MAX_K:
                continue
            alo = <char*>st.c.a[0]
            ahi = alo + M * K * isz
            blo = <char*>st.c.a[1]
            bhi = blo + K * N * isz
            if (_in(self.rec.steps[i].c.out, alo, ahi) or _in(self.rec.steps[i].c.out, blo, bhi)):
                continue
            for k in range(j + 1, i):  # the gemm's operands must not change before i
                if (self.rec.steps[k].k == NULL or _in(self.rec.steps[k].c.out, alo, ahi)
                        or _in(self.rec.steps[k].c.out, blo, bhi)):
                    break
            else:
                self.rec.steps[i].c.a[0] = st.c.a[0]
                self.rec.steps[i].c.a[1] = st.c.a[1]
                for k in range(5):
                    self.rec.steps[i].c.n[k] = st.c.n[k]
                self.rec.steps[i].c.s[1] = -self.rec.steps[i].c.s[0]
                self.rec.steps[i].k = &K_GEMM_SGD
                for k in range(j, n - 1):
                    self.rec.steps[k] = self.rec.steps[k + 1]
                self.rec.n -= 1
                fused += 1
        return fused

    def fuse_bias_activations(self):
        """Fuse ``Z = X + b`` (a bias broadcast over the rows of a contiguous ``X``)
        followed by ``Y = f(Z)`` (tanh, sigmoid or relu) into one ``Y = f(X + b)`` pass
        (``bias_act``) when ``Z`` is an intermediate nothing observes: its buffer was
        freed during the trace (no array refers to it) and no other step touches it.
        ``Y`` holds the same sums and activations (the vector tanh/sigmoid runs over
        blocks of rows instead of the whole array, so an element at a block's edge may
        differ in its last bit); ``Z`` is no longer written. Returns the number of
        fusions."""
        cdef Py_ssize_t j, k, q, R, m, isz, n, fused = 0
        cdef Step* st
        cdef Step* act
        cdef char* zlo
        cdef char* zhi
        cdef int code
        cdef fb_arena* arena
        if self._recording or self._closed:
            raise RuntimeError("fuse a finished plan")
        if self._arena is None:
            return 0
        arena = fb_arena_of(self._arena)
        j = 0
        while j < self.rec.n:
            st = &self.rec.steps[j]
            j += 1
            if st.k == NULL or not row_bias(st.k, &st.c, &R, &m) or R * m == 0:
                continue
            isz = 4 if st.c.dtype == F32 else 8
            zlo = <char*>st.c.out
            zhi = zlo + R * m * isz
            if not fb_arena_holds(arena, zlo, R * m * isz):
                continue  # an array still refers to Z: the caller may read it
            n = self.rec.n
            k = -1
            for q in range(n):  # Z's only other user must be the activation
                if q == j - 1 or not _touches(&self.rec.steps[q], zlo, zhi):
                    continue
                act = &self.rec.steps[q]
                if (k < 0 and q > j - 1 and act.k != NULL and act_code(act.k) != 0
                        and act.c.dtype == st.c.dtype and act.c.a[0] == <void*>zlo
                        and act.c.n[0] == R * m):
                    k = q
                else:
                    k = -2
                    break
            if k < 0 or not self._unchanged(j, k, st, R, m, isz):
                continue
            act = &self.rec.steps[k]
            code = act_code(act.k)
            st.k = bias_act_kernel()
            st.c.out = act.c.out
            for q in range(2, CALL_NA):
                st.c.a[q] = NULL
            for q in range(CALL_NN):
                st.c.n[q] = 0
            st.c.n[0] = R
            st.c.n[1] = m
            st.c.n[2] = code
            st.c.s[0] = 0.0
            st.side = -1
            for q in range(k, n - 1):
                self.rec.steps[q] = self.rec.steps[q + 1]
            self.rec.n -= 1
            fused += 1
        return fused

    cdef bint _unchanged(self, Py_ssize_t j, Py_ssize_t k, Step* st, Py_ssize_t R,
                         Py_ssize_t m, Py_ssize_t isz):
        """Do the steps strictly between add_bias (at j - 1) and the activation (at k)
        leave X, b and the activation's output alone? (Conservative: any touch counts.)"""
        cdef Py_ssize_t q
        cdef char* x = <char*>st.c.a[0]
        cdef char* b = <char*>st.c.a[1]
        cdef char* y = <char*>self.rec.steps[k].c.out
        for q in range(j, k):
            if (_touches(&self.rec.steps[q], x, x + R * m * isz)
                    or _touches(&self.rec.steps[q], b, b + m * isz)
                    or _touches(&self.rec.steps[q], y, y + R * m * isz)):
                return False
        return True

    # ------------------------------------------------------------------ replay
    def bind_run(self, list bufs, arrays):
        """Copy each array of ``arrays`` into the traced input buffer of ``bufs`` (same
        shapes, checked by the caller's signature; a plain memcpy when the layouts and
        dtypes agree), then :meth:`run`."""
        cdef Py_ssize_t i
        cdef cnp.ndarray b, a
        for i in range(len(bufs)):
            b = <cnp.ndarray>bufs[i]
            a = <cnp.ndarray>arrays[i]
            if (cnp.PyArray_TYPE(a) == cnp.PyArray_TYPE(b) and cnp.PyArray_ISCARRAY_RO(a)
                    and cnp.PyArray_ISNOTSWAPPED(a)
                    and cnp.PyArray_NBYTES(a) == cnp.PyArray_NBYTES(b)):
                memcpy(cnp.PyArray_DATA(b), cnp.PyArray_DATA(a), cnp.PyArray_NBYTES(a))
            else:
                cnp.PyArray_CopyInto(b, a)
        self.run()

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
