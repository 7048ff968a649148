/* Bit-packed XNOR-popcount kernels for b2track's binary units (DESIGN.md section 7).
 *
 * Bits: bit j of word w of group g of a pixel is 1 where channel g*Cg + 64*w + j is negative
 * (!(x >= 0), so sign(0) = +1 and NaN counts as -1, as the float path does). Unused tail bits are 0
 * in inputs and weights, so XOR never counts them: dot = K - 2 * popcount(x ^ w).
 * Layouts: packed activations [N, H, W, G, Wg] uint64; packed weights [Cout, kh, kw, Wg] uint64
 * (output channel o belongs to group o / Og) on the portable path; on AVX-512 blocked [G][ceil(Og/16)][K][16]
 * words (64-bit lanes are output channels, so no horizontal sums); on AVX2 nibbles (see conv_avx2); float tensors NHWC with channel stride 1.
 * Dispatch: one function per path, each compiled with its own target attribute, so the file builds
 * with default flags; the caller picks the path and this file checks the CPU supports it.
 * Threads: OpenMP over output rows (the caller passes torch.get_num_threads()).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __GLIBC__
#include <malloc.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define B2_X86 1
#endif

enum { PATH_PORTABLE = 0, PATH_AVX2 = 1, PATH_AVX512 = 2 };

typedef struct {
    const uint64_t *x;      /* packed input [N, H, W, G, Wg] (already spatially padded) */
    const uint64_t *w;      /* packed weights, natural or blocked (see above) */
    int64_t n, h, wd, g, wg; /* input dims */
    int64_t og, kh, kw, sy, sx, oh, ow;
    int64_t kvalid;         /* valid bits per output (Cg * kh * kw) */
    const int32_t *corr;    /* optional [OH, OW, Cout] padding correction, subtracted from dot */
    int32_t *out_int;       /* int mode: [N, OH, OW, Cout] */
    float *out;             /* float mode: [N, OH, OW, Cout] */
    const float *scale, *mult, *shift; /* out = fma(scale * dot, mult, shift) (+ res): torch's BN rounding */
    const float *res;       /* optional residual, strides in floats */
    int64_t rsn, rsh, rsw;
    uint64_t *pout;         /* optional packed output [N, OH, OW, G2, Wg2] */
    int64_t g2, wg2;
    int64_t dense;          /* 1: im2col rows are the K valid bits back to back (see im2col_dense) */
} conv_args;

/* ---- shared pieces: im2col of one output pixel, the epilogue, sign packing ---- */

/* Words of one im2col row per group: word-aligned pixels (kh * kw * Wg), or dense bits (ceil(K / 64)). */
static inline int64_t row_words(const conv_args *a) {
    return a->dense ? (a->kvalid + 63) / 64 : a->kh * a->kw * a->wg;
}

/* Dense im2col: each tap's Cg valid bits follow the previous tap's directly (for Cg not a multiple of
 * 64, e.g. 32 channels: half the words of the aligned layout). The weights are packed the same way. */
static inline void im2col_dense(const conv_args *a, int64_t n, int64_t oy, int64_t ox, uint64_t *col) {
    const int64_t pix = a->g * a->wg, kk = row_words(a), cg = a->kvalid / (a->kh * a->kw);
    memset(col, 0, (size_t)(a->g * kk) * sizeof(uint64_t));
    for (int64_t g = 0; g < a->g; g++) {
        uint64_t *dst = col + g * kk;
        int64_t pos = 0;
        for (int64_t ky = 0; ky < a->kh; ky++) {
            const uint64_t *row = a->x + ((n * a->h + oy * a->sy + ky) * a->wd + ox * a->sx) * pix + g * a->wg;
            for (int64_t kx = 0; kx < a->kw; kx++) {
                for (int64_t w = 0; w < a->wg; w++) {
                    const uint64_t v = row[kx * pix + w];
                    const int64_t bits = cg - 64 * w < 64 ? cg - 64 * w : 64, q = pos >> 6, r = pos & 63;
                    dst[q] |= v << r;
                    if (r && r + bits > 64) dst[q + 1] |= v >> (64 - r);
                    pos += bits;
                }
            }
        }
    }
}

static inline void im2col_pixel(const conv_args *a, int64_t n, int64_t oy, int64_t ox, uint64_t *col) {
    if (a->dense) {
        im2col_dense(a, n, oy, ox, col);
        return;
    }
    const int64_t pix = a->g * a->wg, kk = a->kh * a->kw * a->wg;
    for (int64_t g = 0; g < a->g; g++) {
        uint64_t *dst = col + g * kk;
        for (int64_t ky = 0; ky < a->kh; ky++) {
            const uint64_t *row = a->x + ((n * a->h + oy * a->sy + ky) * a->wd + ox * a->sx) * pix + g * a->wg;
            if (a->g == 1) {
                memcpy(dst, row, (size_t)(a->kw * a->wg) * sizeof(uint64_t));
                dst += a->kw * a->wg;
            } else {
                for (int64_t kx = 0; kx < a->kw; kx++, dst += a->wg)
                    memcpy(dst, row + kx * pix, (size_t)a->wg * sizeof(uint64_t));
            }
        }
    }
}

static inline void pack_scalar(const float *v, int64_t c, int64_t g, int64_t wg, uint64_t *dst) {
    const int64_t cg = c / g;
    for (int64_t gi = 0; gi < g; gi++) {
        const float *src = v + gi * cg;
        for (int64_t w = 0; w < wg; w++) {
            uint64_t word = 0;
            int64_t lo = 64 * w, hi = lo + 64 < cg ? lo + 64 : cg;
            for (int64_t j = lo; j < hi; j++) word |= (uint64_t)(!(src[j] >= 0.0f)) << (j - lo);
            dst[gi * wg + w] = word;
        }
    }
}

/* Scalar epilogue of one output pixel from its popcounts (int32, one per output channel). */
static inline void epilogue_scalar(const conv_args *a, int64_t n, int64_t oy, int64_t ox, const int32_t *pop,
                                   int64_t from) {
    const int64_t cout = a->g * a->og, p = (n * a->oh + oy) * a->ow + ox;
    const int32_t *corr = a->corr ? a->corr + (oy * a->ow + ox) * cout : NULL;
    if (a->out_int) {
        int32_t *dst = a->out_int + p * cout;
        for (int64_t o = from; o < cout; o++) dst[o] = (int32_t)(a->kvalid - 2 * pop[o] - (corr ? corr[o] : 0));
        return;
    }
    float *dst = a->out + p * cout;
    const float *res = a->res ? a->res + n * a->rsn + oy * a->rsh + ox * a->rsw : NULL;
    for (int64_t o = from; o < cout; o++) {
        float d = (float)(a->kvalid - 2 * pop[o] - (corr ? corr[o] : 0));
        float v = fmaf(a->scale[o] * d, a->mult[o], a->shift[o]);
        dst[o] = res ? v + res[o] : v;
    }
}

static inline void pack_output_scalar(const conv_args *a, int64_t n, int64_t oy, int64_t ox) {
    const int64_t cout = a->g * a->og, p = (n * a->oh + oy) * a->ow + ox;
    if (a->pout && !a->out_int) pack_scalar(a->out + p * cout, cout, a->g2, a->wg2, a->pout + p * a->g2 * a->wg2);
}

/* ---- portable path: natural weight layout [Cout][K], scalar popcounts ---- */

/* The scaffold every pixel-at-a-time kernel shares: per-thread scratch (one im2col row `col`, one popcount
 * per output channel `pop`), output rows split over the threads, one im2col row per output pixel, then
 * the kernel's own PIXEL code, which sees n, oy, ox, col and pop. */
#define FOR_EACH_OUTPUT_PIXEL(a, threads, kk, cout, ...)                                           \
    do {                                                                                          \
        const int64_t rows_ = (a)->n * (a)->oh;                                                   \
        _Pragma("omp parallel num_threads(threads)") {                                            \
            uint64_t *col = malloc((size_t)((a)->g * (kk) + 8) * sizeof(uint64_t));               \
            int32_t *pop = malloc((size_t)((cout) + 16) * sizeof(int32_t));                       \
            _Pragma("omp for schedule(static)") for (int64_t r = 0; r < rows_; r++) {             \
                int64_t n = r / (a)->oh, oy = r % (a)->oh;                                        \
                for (int64_t ox = 0; ox < (a)->ow; ox++) {                                        \
                    im2col_pixel(a, n, oy, ox, col);                                              \
                    __VA_ARGS__                                                                   \
                }                                                                                 \
            }                                                                                     \
            free(col);                                                                            \
            free(pop);                                                                            \
        }                                                                                         \
        (void)(threads);                                                                          \
    } while (0)

#define DEFINE_PORTABLE(NAME, ATTR)                                                                \
    ATTR static void NAME(const conv_args *a, int threads) {                                      \
        const int64_t kk = row_words(a), cout = a->g * a->og;                                     \
        FOR_EACH_OUTPUT_PIXEL(a, threads, kk, cout,                                               \
            for (int64_t o = 0; o < cout; o++) {                                                  \
                const uint64_t *x = col + (o / a->og) * kk, *w = a->w + o * kk;                   \
                int64_t s = 0;                                                                    \
                for (int64_t k = 0; k < kk; k++) s += __builtin_popcountll(x[k] ^ w[k]);          \
                pop[o] = (int32_t)s;                                                              \
            }                                                                                     \
            epilogue_scalar(a, n, oy, ox, pop, 0);                                                \
            pack_output_scalar(a, n, oy, ox););                                                   \
    }

DEFINE_PORTABLE(conv_portable, )

#ifdef B2_X86
DEFINE_PORTABLE(conv_popcnt, __attribute__((target("popcnt"))))
DEFINE_PORTABLE(conv_popcnt_fma, __attribute__((target("popcnt,fma"))))

/* ---- SIMD paths: blocked weights [G][ceil(Og/16)][K][16]; 64-bit lanes are output channels ---- */

#define AVX2_ATTR __attribute__((target("avx2,fma,popcnt")))
#define AVX512_ATTR __attribute__((target("avx512f,avx512vpopcntdq,avx2,fma,popcnt")))

AVX2_ATTR static inline __m256i popcnt_bytes_avx2(__m256i v, __m256i lut, __m256i low) {
    __m256i lo = _mm256_and_si256(v, low);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

/* Low dwords of two vectors of four int64 -> eight int32. */
AVX2_ATTR static inline __m256i narrow_avx2(__m256i a, __m256i b) {
    const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    __m256i lo = _mm256_permutevar8x32_epi32(a, idx), hi = _mm256_permutevar8x32_epi32(b, idx);
    return _mm256_blend_epi32(lo, hi, 0xF0);
}

AVX512_ATTR static inline void block16_avx512(const uint64_t *x, const uint64_t *w, int64_t k, int32_t *pop) {
    __m512i t0 = _mm512_setzero_si512(), t1 = t0;
    for (int64_t i = 0; i < k; i++) {
        const __m512i xb = _mm512_set1_epi64((long long)x[i]);
        t0 = _mm512_add_epi64(t0, _mm512_popcnt_epi64(_mm512_xor_si512(xb, _mm512_loadu_si512(w + 16 * i))));
        t1 = _mm512_add_epi64(t1, _mm512_popcnt_epi64(_mm512_xor_si512(xb, _mm512_loadu_si512(w + 16 * i + 8))));
    }
    _mm256_storeu_si256((__m256i *)pop, _mm512_cvtepi64_epi32(t0));
    _mm256_storeu_si256((__m256i *)(pop + 8), _mm512_cvtepi64_epi32(t1));
}

/* Eight-channel float epilogue and sign packing (output channels o .. o+7). */
AVX2_ATTR static inline void epilogue_avx2(const conv_args *a, int64_t n, int64_t oy, int64_t ox,
                                           const int32_t *pop) {
    const int64_t cout = a->g * a->og, p = (n * a->oh + oy) * a->ow + ox, vec = a->out_int ? 0 : cout / 8 * 8;
    const int32_t *corr = a->corr ? a->corr + (oy * a->ow + ox) * cout : NULL;
    const float *res = a->res ? a->res + n * a->rsn + oy * a->rsh + ox * a->rsw : NULL;
    float *dst = a->out_int ? NULL : a->out + p * cout;
    const __m256i kv = _mm256_set1_epi32((int)a->kvalid);
    for (int64_t o = 0; o < vec; o += 8) {
        __m256i d = _mm256_sub_epi32(kv, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(pop + o)), 1));
        if (corr) d = _mm256_sub_epi32(d, _mm256_loadu_si256((const __m256i *)(corr + o)));
        __m256 v = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(a->scale + o), _mm256_cvtepi32_ps(d)),
                                   _mm256_loadu_ps(a->mult + o), _mm256_loadu_ps(a->shift + o));
        if (res) v = _mm256_add_ps(v, _mm256_loadu_ps(res + o));
        _mm256_storeu_ps(dst + o, v);
    }
    epilogue_scalar(a, n, oy, ox, pop, vec);
    if (!a->pout || a->out_int) return;
    const int64_t cg = cout / a->g2;
    if (cg % 8) {
        pack_scalar(dst, cout, a->g2, a->wg2, a->pout + p * a->g2 * a->wg2);
        return;
    }
    uint8_t *bytes = (uint8_t *)(a->pout + p * a->g2 * a->wg2);
    for (int64_t gi = 0; gi < a->g2; gi++, bytes += 8 * a->wg2) {
        memset(bytes, 0, (size_t)(8 * a->wg2));
        for (int64_t c = 0; c < cg; c += 8)
            bytes[c / 8] = (uint8_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(dst + gi * cg + c),
                                                                     _mm256_setzero_ps(), _CMP_NGE_UQ));
    }
}

#define DEFINE_SIMD(NAME, ATTR, BLOCK)                                                             \
    ATTR static void NAME(const conv_args *a, int threads) {                                      \
        const int64_t kk = row_words(a), cout = a->g * a->og;                                     \
        const int64_t nb = (a->og + 15) / 16;                                                     \
        FOR_EACH_OUTPUT_PIXEL(a, threads, kk, cout,                                               \
            for (int64_t g = 0; g < a->g; g++)                                                    \
                for (int64_t b = 0; b < nb; b++)                                                  \
                    BLOCK(col + g * kk, a->w + (g * nb + b) * kk * 16, kk, pop + g * a->og + 16 * b); \
            epilogue_avx2(a, n, oy, ox, pop););                                                   \
    }


/* AVX2: nibble lookup with the weights as the shuffle index. For one im2col row, nibble q of the input
 * selects a 16-byte table t[v] = popcount(x_q ^ v); one vpshufb with 32 weight nibbles (one per output
 * channel) as the index gives those 32 channels' counts. Weights: [G][ceil(Og/32)][16 K][32] bytes.
 * Byte counters are widened to 16 bits every 3 words (48 nibbles, at most 4 each). */
static const uint8_t NIBBLE_LUT[16][32] __attribute__((aligned(32))) = {
#define ROW(x) {__builtin_popcount(x ^ 0), __builtin_popcount(x ^ 1), __builtin_popcount(x ^ 2), __builtin_popcount(x ^ 3), \
    __builtin_popcount(x ^ 4), __builtin_popcount(x ^ 5), __builtin_popcount(x ^ 6), __builtin_popcount(x ^ 7), \
    __builtin_popcount(x ^ 8), __builtin_popcount(x ^ 9), __builtin_popcount(x ^ 10), __builtin_popcount(x ^ 11), \
    __builtin_popcount(x ^ 12), __builtin_popcount(x ^ 13), __builtin_popcount(x ^ 14), __builtin_popcount(x ^ 15), \
    __builtin_popcount(x ^ 0), __builtin_popcount(x ^ 1), __builtin_popcount(x ^ 2), __builtin_popcount(x ^ 3), \
    __builtin_popcount(x ^ 4), __builtin_popcount(x ^ 5), __builtin_popcount(x ^ 6), __builtin_popcount(x ^ 7), \
    __builtin_popcount(x ^ 8), __builtin_popcount(x ^ 9), __builtin_popcount(x ^ 10), __builtin_popcount(x ^ 11), \
    __builtin_popcount(x ^ 12), __builtin_popcount(x ^ 13), __builtin_popcount(x ^ 14), __builtin_popcount(x ^ 15)}
    ROW(0), ROW(1), ROW(2), ROW(3), ROW(4), ROW(5), ROW(6), ROW(7),
    ROW(8), ROW(9), ROW(10), ROW(11), ROW(12), ROW(13), ROW(14), ROW(15)
#undef ROW
};

AVX2_ATTR static inline void widen_store(__m256i lo16, __m256i hi16, int32_t *pop) {
    /* unpacklo/hi_epi8 left 16-bit lanes in the order [0-7, 16-23] and [8-15, 24-31] */
    _mm256_storeu_si256((__m256i *)pop, _mm256_cvtepu16_epi32(_mm256_castsi256_si128(lo16)));
    _mm256_storeu_si256((__m256i *)(pop + 16), _mm256_cvtepu16_epi32(_mm256_extracti128_si256(lo16, 1)));
    _mm256_storeu_si256((__m256i *)(pop + 8), _mm256_cvtepu16_epi32(_mm256_castsi256_si128(hi16)));
    _mm256_storeu_si256((__m256i *)(pop + 24), _mm256_cvtepu16_epi32(_mm256_extracti128_si256(hi16, 1)));
}

/* Up to four 32-channel blocks (nblk, a constant after inlining) against one im2col row of k words. */
AVX2_ATTR static inline __attribute__((always_inline)) void nibble_blocks(const uint64_t *x, const uint8_t *w,
                                                                          int64_t k, int64_t bstride,
                                                                          int32_t *pop, const int nblk) {
    const __m256i zero = _mm256_setzero_si256();
    __m256i lo[4], hi[4], acc[4];
    for (int b = 0; b < nblk; b++) lo[b] = hi[b] = zero;
    for (int64_t k0 = 0; k0 < k; k0 += 3) {
        const int64_t k1 = k0 + 3 < k ? k0 + 3 : k;
        for (int b = 0; b < nblk; b++) acc[b] = zero;
        for (int64_t kw = k0; kw < k1; kw++) {
            uint64_t word = x[kw];
            const uint8_t *wq = w + kw * 16 * 32;
            for (int i = 0; i < 16; i++, word >>= 4, wq += 32) {
                const __m256i t = _mm256_load_si256((const __m256i *)NIBBLE_LUT[word & 15]);
                for (int b = 0; b < nblk; b++)
                    acc[b] = _mm256_add_epi8(acc[b], _mm256_shuffle_epi8(
                        t, _mm256_loadu_si256((const __m256i *)(wq + b * bstride))));
            }
        }
        for (int b = 0; b < nblk; b++) {
            lo[b] = _mm256_add_epi16(lo[b], _mm256_unpacklo_epi8(acc[b], zero));
            hi[b] = _mm256_add_epi16(hi[b], _mm256_unpackhi_epi8(acc[b], zero));
        }
    }
    for (int b = 0; b < nblk; b++) widen_store(lo[b], hi[b], pop + 32 * b);
}

/* Two pixels (two im2col rows) against up to two 32-channel blocks: the weight loads are shared. */
AVX2_ATTR static inline __attribute__((always_inline)) void nibble_pair(const uint64_t *x0, const uint64_t *x1,
                                                                        const uint8_t *w, int64_t k,
                                                                        int64_t bstride, int32_t *pop0,
                                                                        int32_t *pop1, const int nblk) {
    const __m256i zero = _mm256_setzero_si256();
    __m256i lo[4], hi[4], acc[4];
    for (int j = 0; j < 2 * nblk; j++) lo[j] = hi[j] = zero;
    for (int64_t k0 = 0; k0 < k; k0 += 3) {
        const int64_t k1 = k0 + 3 < k ? k0 + 3 : k;
        for (int j = 0; j < 2 * nblk; j++) acc[j] = zero;
        for (int64_t kw = k0; kw < k1; kw++) {
            uint64_t w0 = x0[kw], w1 = x1[kw];
            const uint8_t *wq = w + kw * 16 * 32;
            for (int i = 0; i < 16; i++, w0 >>= 4, w1 >>= 4, wq += 32) {
                const __m256i t0 = _mm256_load_si256((const __m256i *)NIBBLE_LUT[w0 & 15]);
                const __m256i t1 = _mm256_load_si256((const __m256i *)NIBBLE_LUT[w1 & 15]);
                for (int b = 0; b < nblk; b++) {
                    const __m256i idx = _mm256_loadu_si256((const __m256i *)(wq + b * bstride));
                    acc[2 * b] = _mm256_add_epi8(acc[2 * b], _mm256_shuffle_epi8(t0, idx));
                    acc[2 * b + 1] = _mm256_add_epi8(acc[2 * b + 1], _mm256_shuffle_epi8(t1, idx));
                }
            }
        }
        for (int j = 0; j < 2 * nblk; j++) {
            lo[j] = _mm256_add_epi16(lo[j], _mm256_unpacklo_epi8(acc[j], zero));
            hi[j] = _mm256_add_epi16(hi[j], _mm256_unpackhi_epi8(acc[j], zero));
        }
    }
    for (int b = 0; b < nblk; b++) {
        widen_store(lo[2 * b], hi[2 * b], pop0 + 32 * b);
        widen_store(lo[2 * b + 1], hi[2 * b + 1], pop1 + 32 * b);
    }
}

/* One output row, two pixels at a time (output channels per group <= 64). */
AVX2_ATTR static void row_pairs_avx2(const conv_args *a, int64_t n, int64_t oy, uint64_t *col, int32_t *pop) {
    const int64_t kk = row_words(a), cout = a->g * a->og, nb = (a->og + 31) / 32, bstride = kk * 16 * 32;
    uint64_t *col1 = col + a->g * kk + 8;
    int32_t *pop1 = pop + cout + 32;
    for (int64_t ox = 0; ox < a->ow; ox += 2) {
        const int pair = ox + 1 < a->ow;
        im2col_pixel(a, n, oy, ox, col);
        im2col_pixel(a, n, oy, pair ? ox + 1 : ox, col1);
        for (int64_t g = 0; g < a->g; g++) {
            const uint8_t *wb = (const uint8_t *)a->w + g * nb * bstride;
            if (nb == 2) nibble_pair(col + g * kk, col1 + g * kk, wb, kk, bstride, pop + g * a->og,
                                     pop1 + g * a->og, 2);
            else nibble_pair(col + g * kk, col1 + g * kk, wb, kk, bstride, pop + g * a->og, pop1 + g * a->og, 1);
        }
        epilogue_avx2(a, n, oy, ox, pop);
        if (pair) epilogue_avx2(a, n, oy, ox + 1, pop1);
    }
}

AVX2_ATTR static void conv_avx2(const conv_args *a, int threads) {
    const int64_t kk = row_words(a), cout = a->g * a->og, rows = a->n * a->oh;
    const int64_t nb = (a->og + 31) / 32, bstride = kk * 16 * 32;
    const uint8_t *wts = (const uint8_t *)a->w;
    #pragma omp parallel num_threads(threads)
    {
        uint64_t *col = malloc((size_t)(2 * (a->g * kk + 8)) * sizeof(uint64_t));
        int32_t *pop = malloc((size_t)(2 * (cout + 32)) * sizeof(int32_t));
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            int64_t n = r / a->oh, oy = r % a->oh;
            if (nb <= 2) {
                row_pairs_avx2(a, n, oy, col, pop);
                continue;
            }
            for (int64_t ox = 0; ox < a->ow; ox++) {
                im2col_pixel(a, n, oy, ox, col);
                for (int64_t g = 0; g < a->g; g++) {
                    const uint64_t *xg = col + g * kk;
                    for (int64_t b = 0; b < nb; b += 4) {
                        const uint8_t *wb = wts + (g * nb + b) * bstride;
                        int32_t *pb = pop + g * a->og + 32 * b;
                        switch (nb - b >= 4 ? 4 : nb - b) {
                        case 4: nibble_blocks(xg, wb, kk, bstride, pb, 4); break;
                        case 3: nibble_blocks(xg, wb, kk, bstride, pb, 3); break;
                        case 2: nibble_blocks(xg, wb, kk, bstride, pb, 2); break;
                        default: nibble_blocks(xg, wb, kk, bstride, pb, 1); break;
                        }
                    }
                }
                epilogue_avx2(a, n, oy, ox, pop);
            }
        }
        free(col);
        free(pop);
    }
    (void)threads;
}
DEFINE_SIMD(conv_avx512, AVX512_ATTR, block16_avx512)

AVX2_ATTR static void pack_avx2(const float *v, int64_t c, int64_t g, int64_t wg, uint64_t *dst) {
    const int64_t cg = c / g;
    if (cg % 8) {
        pack_scalar(v, c, g, wg, dst);
        return;
    }
    uint8_t *bytes = (uint8_t *)dst;
    for (int64_t gi = 0; gi < g; gi++, bytes += 8 * wg) {
        memset(bytes, 0, (size_t)(8 * wg));
        for (int64_t j = 0; j < cg; j += 8)
            bytes[j / 8] = (uint8_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(v + gi * cg + j),
                                                                     _mm256_setzero_ps(), _CMP_NGE_UQ));
    }
}
#endif

/* ---- CPU support ---- */

static int path_supported(int path) {
#ifdef B2_X86
    __builtin_cpu_init();
    if (path == PATH_AVX512) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
    if (path == PATH_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("popcnt");
#else
    if (path != PATH_PORTABLE) return 0;
#endif
    return path == PATH_PORTABLE;
}

static int check_path(int path) {
    if (path < PATH_PORTABLE || path > PATH_AVX512 || !path_supported(path)) {
        PyErr_Format(PyExc_ValueError, "kernel path %d is not supported by this CPU", path);
        return 0;
    }
    return 1;
}

static PyObject *py_supported(PyObject *self, PyObject *args) {
    (void)self;
    int path;
    if (!PyArg_ParseTuple(args, "i", &path)) return NULL;
    return PyBool_FromLong(path >= PATH_PORTABLE && path <= PATH_AVX512 && path_supported(path));
}

/* conv(path, threads, x, w, n, h, w, g, wg, og, kh, kw, sy, sx, oh, ow, kvalid, corr, out_int, out,
 *      scale, mult, shift, res, rsn, rsh, rsw, pout, g2, wg2, dense); pointers are integers (0 = none). */
static PyObject *py_conv(PyObject *self, PyObject *args) {
    (void)self;
    int path, threads;
    unsigned long long px, pw, pcorr, pint, pout_f, pscale, pmult, pshift, pres, ppout;
    conv_args a;
    if (!PyArg_ParseTuple(args, "iiKKLLLLLLLLLLLLLKKKKKKKLLLKLLL", &path, &threads, &px, &pw, &a.n, &a.h, &a.wd,
                          &a.g, &a.wg, &a.og, &a.kh, &a.kw, &a.sy, &a.sx, &a.oh, &a.ow, &a.kvalid, &pcorr,
                          &pint, &pout_f, &pscale, &pmult, &pshift, &pres, &a.rsn, &a.rsh, &a.rsw, &ppout, &a.g2, &a.wg2, &a.dense))
        return NULL;
    if (!check_path(path)) return NULL;
    a.x = (const uint64_t *)(uintptr_t)px; a.w = (const uint64_t *)(uintptr_t)pw;
    a.corr = (const int32_t *)(uintptr_t)pcorr; a.out_int = (int32_t *)(uintptr_t)pint;
    a.out = (float *)(uintptr_t)pout_f; a.scale = (const float *)(uintptr_t)pscale; a.mult = (const float *)(uintptr_t)pmult;
    a.shift = (const float *)(uintptr_t)pshift; a.res = (const float *)(uintptr_t)pres;
    a.pout = (uint64_t *)(uintptr_t)ppout;
    if (threads < 1) threads = 1;
    Py_BEGIN_ALLOW_THREADS
#ifdef B2_X86
    if (path == PATH_AVX512) conv_avx512(&a, threads);
    else if (path == PATH_AVX2) conv_avx2(&a, threads);
    else if (__builtin_cpu_supports("popcnt") && __builtin_cpu_supports("fma")) conv_popcnt_fma(&a, threads);
    else if (__builtin_cpu_supports("popcnt")) conv_popcnt(&a, threads);
    else conv_portable(&a, threads);
#else
    conv_portable(&a, threads);
#endif
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* pack(path, threads, x, n, h, w, c, sn, sh, sw, out, g, wg): float NHWC (channel stride 1) -> [N, H, W, G, Wg]. */
static PyObject *py_pack(PyObject *self, PyObject *args) {
    (void)self;
    int path, threads;
    unsigned long long px, pout;
    long long n, h, w, c, sn, sh, sw, g, wg;
    if (!PyArg_ParseTuple(args, "iiKLLLLLLLKLL", &path, &threads, &px, &n, &h, &w, &c, &sn, &sh, &sw, &pout, &g, &wg))
        return NULL;
    if (!check_path(path)) return NULL;
    const float *x = (const float *)(uintptr_t)px;
    uint64_t *out = (uint64_t *)(uintptr_t)pout;
    if (threads < 1) threads = 1;
#ifdef B2_X86
    const int simd = path != PATH_PORTABLE;
#else
    const int simd = 0;
#endif
    Py_BEGIN_ALLOW_THREADS
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (long long r = 0; r < n * h; r++) {
        long long ni = r / h, yi = r % h;
        for (long long xi = 0; xi < w; xi++) {
            const float *src = x + ni * sn + yi * sh + xi * sw;
            uint64_t *dst = out + ((ni * h + yi) * w + xi) * g * wg;
#ifdef B2_X86
            if (simd) { pack_avx2(src, c, g, wg, dst); continue; }
#endif
            pack_scalar(src, c, g, wg, dst);
        }
    }
    (void)simd;
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* keep_heap(): glibc returns every freed block over the mmap threshold to the system, so each frame's
 * large activations page-fault again; keep them in the heap instead (process-wide, FP paths too). */
static PyObject *py_keep_heap(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
#ifdef __GLIBC__
    int ok = mallopt(M_MMAP_THRESHOLD, 32 << 20) && mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return PyBool_FromLong(ok);
#else
    Py_RETURN_FALSE;
#endif
}

static PyMethodDef methods[] = {
    {"keep_heap", py_keep_heap, METH_NOARGS, "Keep freed large blocks in the heap (glibc mallopt)."},
    {"supported", py_supported, METH_VARARGS, "supported(path) -> bool: does this CPU run the path."},
    {"conv", py_conv, METH_VARARGS, "Packed XNOR-popcount convolution (see bitops.c)."},
    {"pack", py_pack, METH_VARARGS, "Sign-pack a float NHWC tensor into 64-bit words."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_bitops", "b2track packed binary kernels", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__bitops(void) { return PyModule_Create(&module); }
