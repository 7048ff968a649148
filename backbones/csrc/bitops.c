/* Bit-packed XNOR-popcount kernels for b2track's binary units (DESIGN.md section 7).
 *
 * Bits: bit j of word w of group g of a pixel is 1 where channel g*Cg + 64*w + j is negative
 * (!(x >= 0), so sign(0) = +1 and NaN counts as -1, as the float path does). Unused tail bits are 0
 * in inputs and weights, so XOR never counts them: dot = K - 2 * popcount(x ^ w).
 * Layouts: packed activations [N, H, W, G, Wg] uint64; packed weights [Cout, kh, kw, Wg] uint64
 * (output channel o belongs to group o / Og) on the portable path; on AVX-512 blocked [G][ceil(Og/16)][K][16]
 * words (64-bit lanes are output channels, so no horizontal sums). AVX2 reads its own activation format,
 * nibble bytes [N, H, W, G, ceil(Cg/4)] uint8 (byte j = 4 * the bits of channels 4j .. 4j+3, a table
 * offset), straight from the tensor without im2col, and weights [G][ceil(Og/32)][kh*kw][ceil(Cg/4)][32]
 * nibble bytes (see conv_avx2); pack, bn_pack and the epilogue write that format on the AVX2 path.
 * Float tensors NHWC with channel stride 1.
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
    int64_t ng;             /* AVX2 input: nibble bytes per group and pixel ([N, H, W, G, ng] uint8, 4 * nibble) */
    int64_t nib_out;        /* 1: pout is nibble bytes [N, OH, OW, G2, wg2 = nibbles per group] (AVX2 input) */
    int64_t cg2;            /* derived (py_conv): output channels per packed-output group */
    int64_t nib_fast;       /* derived: the AVX2 epilogue packs nibble bytes from its registers */
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

/* Nibble bytes of signs: byte j of a group holds 4 * (bits of channels 4j .. 4j+3), the AVX2 input format. */
static inline void pack_nib_scalar(const float *v, int64_t c, int64_t g, int64_t ng, uint8_t *dst) {
    const int64_t cg = c / g;
    for (int64_t gi = 0; gi < g; gi++) {
        const float *src = v + gi * cg;
        for (int64_t j = 0; j < ng; j++) {
            unsigned nib = 0;
            for (int64_t k = 4 * j; k < 4 * j + 4 && k < cg; k++) nib |= (unsigned)(!(src[k] >= 0.0f)) << (k - 4 * j);
            dst[gi * ng + j] = (uint8_t)(nib << 2);
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
    if (!a->pout || a->out_int) return;
    if (a->nib_out) pack_nib_scalar(a->out + p * cout, cout, a->g2, a->wg2, (uint8_t *)a->pout + p * a->g2 * a->wg2);
    else pack_scalar(a->out + p * cout, cout, a->g2, a->wg2, a->pout + p * a->g2 * a->wg2);
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

/* Sign bits of 8 floats: bit i is 1 where v[i] is negative or NaN (!(v >= 0), as the float path). */
AVX2_ATTR static inline int neg8(__m256 v) {
    return _mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NGE_UQ));
}

/* Nibble bytes (4 * each 4-bit group, low bits first) of up to 64 sign bits: 2 * 8 bytes by one unpack. */
AVX2_ATTR static inline void nib_store(uint64_t signs, uint8_t *dst, int64_t bytes) {
    const __m128i m = _mm_cvtsi64_si128((long long)signs), low = _mm_set1_epi8(15);
    const __m128i lo = _mm_and_si128(m, low), hi = _mm_and_si128(_mm_srli_epi16(m, 4), low);
    const __m128i nibs = _mm_slli_epi16(_mm_unpacklo_epi8(lo, hi), 2);
    if (bytes == 16) _mm_storeu_si128((__m128i *)dst, nibs);
    else {
        uint8_t tmp[16];
        _mm_storeu_si128((__m128i *)tmp, nibs);
        memcpy(dst, tmp, (size_t)bytes);
    }
}

/* Nibble-byte sign packing of one pixel (see pack_nib_scalar): eight channels per movemask. */
AVX2_ATTR static inline void pack_nib_avx2(const float *v, int64_t c, int64_t g, int64_t ng, uint8_t *dst) {
    const int64_t cg = c / g;
    if (cg % 8) {
        pack_nib_scalar(v, c, g, ng, dst);
        return;
    }
    for (int64_t gi = 0; gi < g; gi++, dst += ng, v += cg)
        for (int64_t j = 0; j < cg; j += 64) {
            uint64_t signs = 0;
            for (int64_t k = j; k < cg && k < j + 64; k += 8)
                signs |= (uint64_t)neg8(_mm256_loadu_ps(v + k)) << (k - j);
            nib_store(signs, dst + j / 4, (cg - j < 64 ? cg - j : 64) / 4);
        }
}

/* Eight-channel float epilogue and sign packing (output channels o .. o+7). */
AVX2_ATTR static inline void epilogue_avx2(const conv_args *a, int64_t n, int64_t oy, int64_t ox,
                                           const int32_t *pop) {
    const int64_t cout = a->g * a->og, p = (n * a->oh + oy) * a->ow + ox, vec = a->out_int ? 0 : cout / 8 * 8;
    const int32_t *corr = a->corr ? a->corr + (oy * a->ow + ox) * cout : NULL;
    const float *res = a->res ? a->res + n * a->rsn + oy * a->rsh + ox * a->rsw : NULL;
    float *dst = a->out_int ? NULL : a->out + p * cout;
    const float *const scale = a->scale, *const mult = a->mult, *const shift = a->shift;
    const __m256i kv = _mm256_set1_epi32((int)a->kvalid);
    /* nibble-byte output of 8-channel chunks inside one group: packed right here, from the registers */
    const int64_t cg2 = a->cg2, wg2 = a->wg2;
    uint8_t *nib = a->nib_fast ? (uint8_t *)a->pout + p * a->g2 * wg2 : NULL;
    uint8_t *nibp = nib;  /* where the next 64 channels' nibble bytes go */
    int64_t left = cg2;   /* channels left in the current output group */
    uint64_t signs = 0;   /* sign bits of up to 64 channels of the current group, not yet stored */
    int64_t held = 0;     /* how many */
    for (int64_t o = 0; o < vec; o += 8) {
        __m256i d = _mm256_sub_epi32(kv, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(pop + o)), 1));
        if (corr) d = _mm256_sub_epi32(d, _mm256_loadu_si256((const __m256i *)(corr + o)));
        __m256 v = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(scale + o), _mm256_cvtepi32_ps(d)),
                                   _mm256_loadu_ps(mult + o), _mm256_loadu_ps(shift + o));
        if (res) v = _mm256_add_ps(v, _mm256_loadu_ps(res + o));
        _mm256_storeu_ps(dst + o, v);
        if (nib) {
            signs |= (uint64_t)neg8(v) << held;
            held += 8;
            left -= 8;
            if (held == 64 || left == 0) {
                nib_store(signs, nibp, held / 4);
                nibp += held / 4;
                signs = 0;
                held = 0;
            }
            if (left == 0) {  /* next group: its bytes start wg2 after the previous group's */
                nib += wg2;
                nibp = nib;
                left = cg2;
            }
        }
    }
    if (vec < cout || a->out_int) epilogue_scalar(a, n, oy, ox, pop, vec);
    if (!a->pout || a->out_int || nib) return;
    if (a->nib_out) {
        pack_nib_avx2(dst, cout, a->g2, a->wg2, (uint8_t *)a->pout + p * a->g2 * a->wg2);
        return;
    }
    const int64_t cg = cout / a->g2;
    if (cg % 8) {
        pack_scalar(dst, cout, a->g2, a->wg2, a->pout + p * a->g2 * a->wg2);
        return;
    }
    uint8_t *bytes = (uint8_t *)(a->pout + p * a->g2 * a->wg2);
    for (int64_t gi = 0; gi < a->g2; gi++, bytes += 8 * a->wg2) {
        memset(bytes, 0, (size_t)(8 * a->wg2));
        for (int64_t c = 0; c < cg; c += 8)
            bytes[c / 8] = (uint8_t)neg8(_mm256_loadu_ps(dst + gi * cg + c));
    }
}

/* epilogue_avx2 without its branches, for the common case: float output, no padding correction, one
 * output group (or no packed output), cout a multiple of 8; RES and NIB constant after inlining. */
AVX2_ATTR static inline __attribute__((always_inline)) void epilogue_fast(const conv_args *a, int64_t n, int64_t oy,
                                                                          int64_t ox, const int32_t *pop,
                                                                          const int RES, const int NIB) {
    const int64_t cout = a->og, p = (n * a->oh + oy) * a->ow + ox;
    const float *res = RES ? a->res + n * a->rsn + oy * a->rsh + ox * a->rsw : NULL;
    float *dst = a->out + p * cout;
    uint8_t *nib = NIB ? (uint8_t *)a->pout + p * a->wg2 : NULL;
    const __m256i kv = _mm256_set1_epi32((int)a->kvalid);
    const float *const scale = a->scale, *const mult = a->mult, *const shift = a->shift;
    uint64_t signs = 0;  /* sign bits of the current 64 channels, written as 16 nibble bytes at once */
    for (int64_t o = 0; o < cout; o += 8) {
        const __m256i d = _mm256_sub_epi32(kv, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(pop + o)), 1));
        __m256 v = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(scale + o), _mm256_cvtepi32_ps(d)),
                                   _mm256_loadu_ps(mult + o), _mm256_loadu_ps(shift + o));
        if (RES) v = _mm256_add_ps(v, _mm256_loadu_ps(res + o));
        _mm256_storeu_ps(dst + o, v);
        if (NIB) {
            signs |= (uint64_t)neg8(v) << (o % 64);
            if (o % 64 == 56 || o + 8 == cout) {
                nib_store(signs, nib + (o / 64) * 16, (o % 64 + 8) / 4);
                signs = 0;
            }
        }
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

/* One tile: P pixels (input pixel pointers px[p], group start) x B blocks of 32 output channels, over all
 * taps (byte offsets toff[t]) and ng nibbles per tap. Input bytes are 4 * nibble, so the table row of an
 * input nibble is NIBBLE_LUT + 8 * byte; the weight nibbles of 32 channels are the vpshufb index.
 * Byte counters (at most 4 per step) are widened to 16 bits every 63 steps, 16-bit sums to int32 at the end. */
AVX2_ATTR static inline __attribute__((always_inline)) void nib_tile(
    const uint8_t *const *px, const int64_t *toff, int64_t taps, int64_t ng, const uint8_t *w, int64_t bstride,
    int32_t *const *pop, const int P, const int B) {
    const __m256i zero = _mm256_setzero_si256();
    const uint8_t *lut = &NIBBLE_LUT[0][0];
    __m256i acc[12], lo[12], hi[12];
    for (int i = 0; i < P * B; i++) acc[i] = lo[i] = hi[i] = zero;
    int64_t cap = 63;
    for (int64_t t = 0; t < taps; t++) {
        const uint8_t *wt = w + t * ng * 32;
        const int64_t off = toff[t];
        for (int64_t j = 0; j < ng;) {
            const int64_t m = ng - j < cap ? ng - j : cap;
            for (int64_t e = j + m; j < e; j++) {
                __m256i wv[4];
                for (int b = 0; b < B; b++) wv[b] = _mm256_loadu_si256((const __m256i *)(wt + j * 32 + b * bstride));
                for (int p = 0; p < P; p++) {
                    const __m256i tv = _mm256_load_si256((const __m256i *)(lut + 8 * (size_t)px[p][off + j]));
                    for (int b = 0; b < B; b++)
                        acc[p * B + b] = _mm256_add_epi8(acc[p * B + b], _mm256_shuffle_epi8(tv, wv[b]));
                }
            }
            cap -= m;
            if (cap == 0) {
                for (int i = 0; i < P * B; i++) {
                    lo[i] = _mm256_add_epi16(lo[i], _mm256_unpacklo_epi8(acc[i], zero));
                    hi[i] = _mm256_add_epi16(hi[i], _mm256_unpackhi_epi8(acc[i], zero));
                    acc[i] = zero;
                }
                cap = 63;
            }
        }
    }
    for (int i = 0; i < P * B; i++) {
        lo[i] = _mm256_add_epi16(lo[i], _mm256_unpacklo_epi8(acc[i], zero));
        hi[i] = _mm256_add_epi16(hi[i], _mm256_unpackhi_epi8(acc[i], zero));
        widen_store(lo[i], hi[i], pop[i / B] + 32 * (i % B));
    }
}

/* P (a constant after inlining) output pixels ox .. ox+P-1 of row (n, oy), all groups and channel blocks;
 * pixels past the row's end repeat its last pixel (computed, not stored). */
AVX2_ATTR static inline __attribute__((always_inline)) void nib_pixels(const conv_args *a, int64_t n, int64_t oy,
                                                                       int64_t ox, const int64_t *toff,
                                                                       int64_t taps, int64_t run,
                                                                       int32_t *popbuf, const int P) {
    const int64_t cout = a->g * a->og, nb = (a->og + 31) / 32, ng = a->ng;
    const int64_t bstride = taps * run * 32, pix = a->g * ng;
    const uint8_t *x = (const uint8_t *)a->x, *wts = (const uint8_t *)a->w;
    const uint8_t *px[12];
    int32_t *pop[12];
    for (int64_t g = 0; g < a->g; g++) {
        for (int p = 0; p < P; p++) {
            const int64_t xo = ox + p < a->ow ? ox + p : a->ow - 1;
            px[p] = x + ((n * a->h + oy * a->sy) * a->wd + xo * a->sx) * pix + g * ng;
        }
        for (int64_t b = 0; b < nb;) {
            const uint8_t *wb = wts + (g * nb + b) * bstride;
            for (int p = 0; p < P; p++) pop[p] = popbuf + p * (cout + 32 * 4) + g * a->og + 32 * b;
            const int64_t left = nb - b;
            if (P == 2 && left >= 4) { nib_tile(px, toff, taps, run, wb, bstride, pop, 2, 4); b += 4; }
            else if (P <= 4 && left >= 2) { nib_tile(px, toff, taps, run, wb, bstride, pop, P, 2); b += 2; }
            else { nib_tile(px, toff, taps, run, wb, bstride, pop, P, 1); b += 1; }
        }
    }
    const int fast = a->g == 1 && !a->corr && !a->out_int && cout % 8 == 0 && (!a->pout || (a->nib_fast && a->g2 == 1));
    for (int p = 0; p < P && ox + p < a->ow; p++) {
        const int32_t *pp = popbuf + p * (cout + 32 * 4);
        if (!fast) epilogue_avx2(a, n, oy, ox + p, pp);
        else if (a->res && a->pout) epilogue_fast(a, n, oy, ox + p, pp, 1, 1);
        else if (a->res) epilogue_fast(a, n, oy, ox + p, pp, 1, 0);
        else if (a->pout) epilogue_fast(a, n, oy, ox + p, pp, 0, 1);
        else epilogue_fast(a, n, oy, ox + p, pp, 0, 0);
    }
}

/* AVX2: nibble lookup with the weights as the shuffle index, read straight from the nibble-byte input
 * [N, H, W, G, ng] (no im2col): a tile of pixels x 32-channel blocks shares every loaded table row and
 * weight vector. Weights: [G][ceil(Og/32)][kh * kw][ng][32] nibble bytes. */
AVX2_ATTR static void conv_avx2(const conv_args *a, int threads) {
    const int64_t cout = a->g * a->og, rows = a->n * a->oh, nb = (a->og + 31) / 32;
    const int P = nb >= 4 ? 2 : nb >= 2 ? 4 : 8;  /* tiles of 8 counters (16 ymm registers) */
    /* runs of contiguous input bytes: with one group a kernel row's kw taps are adjacent pixels, so one
     * run of kw * ng bytes per kernel row (the weights' [taps][ng] order is the same); else one per tap */
    int64_t toff[1024];
    const int64_t pix = a->g * a->ng, rowrun = a->g == 1;
    const int64_t taps = rowrun ? a->kh : a->kh * a->kw, run = rowrun ? a->kw * a->ng : a->ng;
    for (int64_t ky = 0; ky < a->kh; ky++)
        for (int64_t kx = 0; kx < a->kw; kx++) toff[ky * a->kw + kx] = (ky * a->wd + kx) * pix;
    if (rowrun)
        for (int64_t ky = 0; ky < a->kh; ky++) toff[ky] = ky * a->wd * pix;
    #pragma omp parallel num_threads(threads)
    {
        const size_t popbytes = (size_t)(8 * (cout + 32 * 4)) * sizeof(int32_t);
        int32_t *popbuf = aligned_alloc(64, (popbytes + 127) / 64 * 64);  /* a multiple of the alignment */
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const int64_t n = r / a->oh, oy = r % a->oh;
            for (int64_t ox = 0; ox < a->ow; ox += P) {
                if (P == 2) nib_pixels(a, n, oy, ox, toff, taps, run, popbuf, 2);
                else if (P == 4) nib_pixels(a, n, oy, ox, toff, taps, run, popbuf, 4);
                else nib_pixels(a, n, oy, ox, toff, taps, run, popbuf, 8);
            }
        }
        free(popbuf);
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
            bytes[j / 8] = (uint8_t)neg8(_mm256_loadu_ps(v + gi * cg + j));
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
    if (!PyArg_ParseTuple(args, "iiKKLLLLLLLLLLLLLKKKKKKKLLLKLLLLL", &path, &threads, &px, &pw, &a.n, &a.h, &a.wd,
                          &a.g, &a.wg, &a.og, &a.kh, &a.kw, &a.sy, &a.sx, &a.oh, &a.ow, &a.kvalid, &pcorr,
                          &pint, &pout_f, &pscale, &pmult, &pshift, &pres, &a.rsn, &a.rsh, &a.rsw, &ppout, &a.g2, &a.wg2, &a.dense, &a.ng, &a.nib_out))
        return NULL;
    if (!check_path(path)) return NULL;
    a.cg2 = a.g2 > 0 ? a.g * a.og / a.g2 : 1;
    a.nib_fast = ppout && a.nib_out && !pint && a.cg2 % 8 == 0 && (a.g * a.og) % 8 == 0;
    if (path == PATH_AVX2 && (a.ng < 1 || a.kvalid > 65535 || a.kh * a.kw > 1024)) {
        PyErr_SetString(PyExc_ValueError, "the avx2 kernel needs nibble input, K < 65536 and at most 1024 taps");
        return NULL;
    }
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

/* pack(path, threads, x, n, h, w, c, sn, sh, sw, out, g, wg, nib): float NHWC (channel stride 1) -> [N, H, W, G, Wg]
 * words, or with nib the AVX2 input's nibble bytes [N, H, W, G, wg = nibbles per group]. */
static PyObject *py_pack(PyObject *self, PyObject *args) {
    (void)self;
    int path, threads;
    unsigned long long px, pout;
    long long n, h, w, c, sn, sh, sw, g, wg;
    int nib;
    if (!PyArg_ParseTuple(args, "iiKLLLLLLLKLLi", &path, &threads, &px, &n, &h, &w, &c, &sn, &sh, &sw, &pout, &g, &wg, &nib))
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
            const long long at = ((ni * h + yi) * w + xi) * g * wg;
            if (nib) {
#ifdef B2_X86
                if (simd) { pack_nib_avx2(src, c, g, wg, (uint8_t *)out + at); continue; }
#endif
                pack_nib_scalar(src, c, g, wg, (uint8_t *)out + at);
                continue;
            }
            uint64_t *dst = out + at;
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

/* One pixel of bn_pack: out = fma(x, mult, shift) (torch's batch norm rounding) and its signs packed. */
static inline void bn_pixel_scalar(const float *x, const float *mult, const float *shift, int64_t c, float *out) {
    for (int64_t k = 0; k < c; k++) out[k] = fmaf(x[k], mult[k], shift[k]);
}

#ifdef B2_X86
AVX2_ATTR static inline void bn_pixel_avx2(const float *x, const float *mult, const float *shift, int64_t c,
                                           float *out) {
    int64_t k = 0;
    for (; k + 8 <= c; k += 8)
        _mm256_storeu_ps(out + k, _mm256_fmadd_ps(_mm256_loadu_ps(x + k), _mm256_loadu_ps(mult + k),
                                                  _mm256_loadu_ps(shift + k)));
    bn_pixel_scalar(x + k, mult + k, shift + k, c - k, out + k);
}
#endif

/* bn_pack(path, threads, x, n, h, w, c, sn, sh, sw, mult, shift, out, pout, g, last, nib): a batch norm
 * (out = fma(x, mult, shift), NHWC float, contiguous) fused with sign-packing its result into pout, as pack
 * writes it: the stem's batch norm feeding a binary unit costs one pass instead of two. */
static PyObject *py_bn_pack(PyObject *self, PyObject *args) {
    (void)self;
    int path, threads, nib;
    unsigned long long px, pm, ps, po, pp;
    long long n, h, w, c, sn, sh, sw, g, last;
    if (!PyArg_ParseTuple(args, "iiKLLLLLLLKKKKLLi", &path, &threads, &px, &n, &h, &w, &c, &sn, &sh, &sw, &pm, &ps,
                          &po, &pp, &g, &last, &nib))
        return NULL;
    if (!check_path(path)) return NULL;
    const float *x = (const float *)(uintptr_t)px, *mult = (const float *)(uintptr_t)pm;
    const float *shift = (const float *)(uintptr_t)ps;
    float *out = (float *)(uintptr_t)po;
    if (threads < 1) threads = 1;
    Py_BEGIN_ALLOW_THREADS
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (long long r = 0; r < n * h; r++) {
        const long long ni = r / h, yi = r % h;
        for (long long xi = 0; xi < w; xi++) {
            const long long at = (ni * h + yi) * w + xi;
            const float *src = x + ni * sn + yi * sh + xi * sw;
            float *dst = out + at * c;
#ifdef B2_X86
            if (path != PATH_PORTABLE) {
                bn_pixel_avx2(src, mult, shift, c, dst);
                if (nib) pack_nib_avx2(dst, c, g, last, (uint8_t *)(uintptr_t)pp + at * g * last);
                else pack_avx2(dst, c, g, last, (uint64_t *)(uintptr_t)pp + at * g * last);
                continue;
            }
#endif
            bn_pixel_scalar(src, mult, shift, c, dst);
            if (nib) pack_nib_scalar(dst, c, g, last, (uint8_t *)(uintptr_t)pp + at * g * last);
            else pack_scalar(dst, c, g, last, (uint64_t *)(uintptr_t)pp + at * g * last);
        }
    }
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
    {"bn_pack", py_bn_pack, METH_VARARGS, "Batch norm (fused multiply-add) and sign-packing in one pass."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_bitops", "b2track packed binary kernels", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__bitops(void) {
    return PyModule_Create(&module);
}
