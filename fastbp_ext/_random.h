/* The counter-based generator of fastbp (fastbp.Generator) and the dropout loops that
 * draw from it inside the kernel.
 *
 * A generator's state is two 64-bit words, [key, counter]. Word j of the stream is
 * splitmix64 seeded with ``key`` at position ``counter + j``:
 *
 *     z = key + (counter + j) * 0x9E3779B97F4A7C15          (mod 2^64)
 *     z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
 *     z = (z ^ (z >> 27)) * 0x94D049BB133111EB
 *     word = z ^ (z >> 31)
 *
 * Every word depends only on (key, counter + j), so a loop over j vectorises and splits
 * over threads with no shared state. Element k of a call uses 32 bits: the low half of
 * word k / 2 when k is even, the high half when k is odd; a call over n elements
 * consumes ceil(n / 2) words and advances the counter stored in the state by that much,
 * atomically, before drawing: a replayed kernel call draws fresh numbers every time, and
 * two threads sharing a generator get disjoint ranges.
 *
 * An element is kept when its 32-bit draw u satisfies u >= ceil(rate * 2^32), i.e. with
 * probability 1 - rate to within 2^-32; the numpy reference
 * (fastbp.backends.numpy_ops.counter_words) computes the same words with numpy's uint64
 * arithmetic, so both backends give bitwise-identical masks.
 *
 * Static: every extension module including this header has its own copy.
 */
#ifndef FASTBP_RANDOM_H
#define FASTBP_RANDOM_H

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__GLIBC__)
#define FASTBP_RCLONES __attribute__((target_clones("default", "avx2", "arch=x86-64-v4")))
#else
#define FASTBP_RCLONES
#endif

static inline uint64_t fastbp_splitmix64(uint64_t key, uint64_t pos) {
    uint64_t z = key + pos * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* counter += n; returns the counter before the addition (atomic under GCC/clang). */
static inline uint64_t fastbp_claim(uint64_t *counter, uint64_t n) {
#if defined(__GNUC__)
    return __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
#else
    uint64_t c = *counter;
    *counter = c + n;
    return c;
#endif
}

/* Elements [lo, hi) of a dropout call (lo even) whose first word is at position ctr0:
 *   mask[k] = draw(k) >= thr ? scale : 0;   y[k] = x[k] * mask[k]  (when x != NULL). */
#define FASTBP_DROPOUT(NAME, T)                                                          \
FASTBP_RCLONES static void NAME(uint64_t key, uint64_t ctr0, uint64_t thr, T scale,      \
                                const T *restrict x, T *restrict y, T *restrict mask,   \
                                ptrdiff_t lo, ptrdiff_t hi) {                            \
    const T zero = 0;                                                                    \
    const ptrdiff_t j0 = lo >> 1, j1 = hi >> 1; /* whole pairs */                        \
    if (x == NULL) {                                                                     \
        for (ptrdiff_t j = j0; j < j1; j++) {                                            \
            const uint64_t w = fastbp_splitmix64(key, ctr0 + (uint64_t)j);               \
            mask[2 * j] = (w & 0xFFFFFFFFULL) >= thr ? scale : zero;                     \
            mask[2 * j + 1] = (w >> 32) >= thr ? scale : zero;                           \
        }                                                                                \
    } else {                                                                             \
        for (ptrdiff_t j = j0; j < j1; j++) {                                            \
            const uint64_t w = fastbp_splitmix64(key, ctr0 + (uint64_t)j);               \
            const T m0 = (w & 0xFFFFFFFFULL) >= thr ? scale : zero;                      \
            const T m1 = (w >> 32) >= thr ? scale : zero;                                \
            mask[2 * j] = m0;                                                            \
            mask[2 * j + 1] = m1;                                                        \
            y[2 * j] = x[2 * j] * m0;                                                    \
            y[2 * j + 1] = x[2 * j + 1] * m1;                                            \
        }                                                                                \
    }                                                                                    \
    if (hi & 1) { /* an odd last element: the low half of word j1 */                     \
        const uint64_t w = fastbp_splitmix64(key, ctr0 + (uint64_t)j1);                  \
        const T m = (w & 0xFFFFFFFFULL) >= thr ? scale : zero;                           \
        mask[hi - 1] = m;                                                                \
        if (x != NULL) y[hi - 1] = x[hi - 1] * m;                                        \
    }                                                                                    \
}
FASTBP_DROPOUT(fastbp_dropout_f, float)
FASTBP_DROPOUT(fastbp_dropout_d, double)

#endif
