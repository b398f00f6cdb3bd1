/* The memory arena of a compiled step plan (fastbp_ext/_plan.pyx).
 *
 * While a step is traced, numpy allocates array data through this NEP 49 handler
 * (PyDataMem_SetHandler). A plan's recorded kernel calls point into those buffers, so a
 * buffer that numpy frees while the plan is alive (an intermediate of the traced step)
 * is held back instead of being freed: it stays valid until the plan is released. After
 * that, frees go straight to the C allocator. Every block is 64-byte aligned and carries
 * its size in a 64-byte header (for realloc while deferring).
 */
#ifndef FASTBP_ARENA_H
#define FASTBP_ARENA_H

#include <Python.h>
#include <stdlib.h>
#include <string.h>
#include <numpy/arrayobject.h>

#define FB_ARENA_HDR 64

typedef struct {
    int deferring;      /* 1 while a plan that may point into freed buffers is alive */
    void **held;        /* blocks numpy freed while deferring (block base pointers) */
    size_t n, cap;
    size_t bytes_held;
    size_t bytes_live;  /* bytes of blocks handed out and not yet freed by numpy */
} fb_arena;

static void *fb_arena_block(size_t size) {
    void *base = NULL;
    if (posix_memalign(&base, FB_ARENA_HDR, size + FB_ARENA_HDR) != 0) return NULL;
    *(size_t *)base = size;
    return (char *)base + FB_ARENA_HDR;
}

static void *fb_arena_malloc(void *ctx, size_t size) {
    fb_arena *a = (fb_arena *)ctx;
    void *p = fb_arena_block(size);
    if (p) a->bytes_live += size;
    return p;
}

static void *fb_arena_calloc(void *ctx, size_t nelem, size_t elsize) {
    size_t size;
    void *p;
    if (elsize && nelem > (size_t)-1 / elsize) return NULL;
    size = nelem * elsize;
    p = fb_arena_malloc(ctx, size);
    if (p) memset(p, 0, size);
    return p;
}

static void fb_arena_hold(fb_arena *a, void *base) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        void **h = (void **)realloc(a->held, cap * sizeof(void *));
        if (h == NULL) return;  /* out of memory: leak the block rather than free it */
        a->held = h;
        a->cap = cap;
    }
    a->held[a->n++] = base;
    a->bytes_held += *(size_t *)base;
}

static void fb_arena_free(void *ctx, void *ptr, size_t size) {
    fb_arena *a = (fb_arena *)ctx;
    void *base;
    (void)size;
    if (ptr == NULL) return;
    base = (char *)ptr - FB_ARENA_HDR;
    a->bytes_live -= *(size_t *)base;
    if (a->deferring) fb_arena_hold(a, base);
    else free(base);
}

static void *fb_arena_realloc(void *ctx, void *ptr, size_t new_size) {
    fb_arena *a = (fb_arena *)ctx;
    size_t old;
    void *p;
    if (ptr == NULL) return fb_arena_malloc(ctx, new_size);
    old = *(size_t *)((char *)ptr - FB_ARENA_HDR);
    p = fb_arena_malloc(ctx, new_size);
    if (p == NULL) return NULL;
    memcpy(p, ptr, old < new_size ? old : new_size);
    fb_arena_free(ctx, ptr, old);
    return p;
}

/* Does [p, p + nbytes) lie inside a block numpy freed while deferring (an intermediate
 * no array refers to any more)? */
static int fb_arena_holds(const fb_arena *a, const void *p, size_t nbytes) {
    size_t i;
    const char *q = (const char *)p;
    for (i = 0; i < a->n; i++) {
        const char *data = (const char *)a->held[i] + FB_ARENA_HDR;
        if (data <= q && q + nbytes <= data + *(const size_t *)a->held[i]) return 1;
    }
    return 0;
}

/* Free the held blocks and stop deferring (the plan that pointed into them is gone). */
static void fb_arena_release(fb_arena *a) {
    size_t i;
    a->deferring = 0;
    for (i = 0; i < a->n; i++) free(a->held[i]);
    free(a->held);
    a->held = NULL;
    a->n = a->cap = 0;
    a->bytes_held = 0;
}

static void fb_arena_capsule_destroy(PyObject *cap) {
    PyDataMem_Handler *h = (PyDataMem_Handler *)PyCapsule_GetPointer(cap, "mem_handler");
    if (h == NULL) { PyErr_Clear(); return; }
    fb_arena_release((fb_arena *)h->allocator.ctx);
    free(h->allocator.ctx);
    free(h);
}

/* A new arena as a "mem_handler" capsule (deferring frees from the start). */
static PyObject *fb_arena_new(void) {
    PyDataMem_Handler *h = (PyDataMem_Handler *)calloc(1, sizeof(PyDataMem_Handler));
    fb_arena *a = (fb_arena *)calloc(1, sizeof(fb_arena));
    PyObject *cap;
    if (h == NULL || a == NULL) { free(h); free(a); return PyErr_NoMemory(); }
    strncpy(h->name, "fastbp_plan_arena", sizeof(h->name) - 1);
    h->version = 1;
    a->deferring = 1;
    h->allocator.ctx = a;
    h->allocator.malloc = fb_arena_malloc;
    h->allocator.calloc = fb_arena_calloc;
    h->allocator.realloc = fb_arena_realloc;
    h->allocator.free = fb_arena_free;
    cap = PyCapsule_New(h, "mem_handler", fb_arena_capsule_destroy);
    if (cap == NULL) { free(h); free(a); }
    return cap;
}

static fb_arena *fb_arena_of(PyObject *cap) {
    PyDataMem_Handler *h = (PyDataMem_Handler *)PyCapsule_GetPointer(cap, "mem_handler");
    return h ? (fb_arena *)h->allocator.ctx : NULL;
}

#endif
