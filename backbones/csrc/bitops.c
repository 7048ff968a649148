/* Bit-packed XNOR-popcount kernels for b2track's binary units (DESIGN.md section 7).
 *
 * Bits: bit j of word w of group g of a pixel is 1 where channel g*Cg + 64*w + j is negative
 * (!(x >= 0), so sign(0) = +1 and NaN counts as -1, as the float path does). Unused tail bits are 0
 * in inputs and weights, so XOR never counts them: dot = K - 2 * popcount(x ^ w).
 * Layouts: packed activations [N, H, W, G, Wg] uint64; packed weights [Cout, kh, kw, Wg] uint64
 * (output channel o belongs to group o / Og); float tensors NHWC with channel stride 1.
 * Dispatch: one function per path, each compiled with its own target attribute, so the file builds
 * with default flags; the caller picks the path and this file checks the CPU supports it.
 * Threads: OpenMP over output rows (the caller passes torch.get_num_threads()).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define B2_X86 1
#endif

enum { PATH_PORTABLE = 0, PATH_AVX2 = 1, PATH_AVX512 = 2 };

typedef struct {
    const uint64_t *x;      /* packed input [N, H, W, G, Wg] (already spatially padded) */
    const uint64_t *w;      /* packed weights [Cout, kh, kw, Wg] */
    int64_t n, h, wd, g, wg; /* input dims */
    int64_t og, kh, kw, sy, sx, oh, ow;
    int64_t kvalid;         /* valid bits per output (Cg * kh * kw) */
    const int32_t *corr;    /* optional [OH, OW, Cout] padding correction, subtracted from dot */
    int32_t *out_int;       /* int mode: [N, OH, OW, Cout] */
    float *out;             /* float mode: [N, OH, OW, Cout] */
    const float *scale, *shift;
    const float *res;       /* optional residual, strides in floats */
    int64_t rsn, rsh, rsw;
    uint64_t *pout;         /* optional packed output [N, OH, OW, G2, Wg2] */
    int64_t g2, wg2;
} conv_args;

/* ---- popcount dot products: sum over k of popcount(a[k] ^ b[k]) ---- */

static inline int64_t dot_portable(const uint64_t *a, const uint64_t *b, int64_t k) {
    int64_t s = 0;
    for (int64_t i = 0; i < k; i++) s += __builtin_popcountll(a[i] ^ b[i]);
    return s;
}

#ifdef B2_X86
__attribute__((target("popcnt")))
static inline int64_t dot_popcnt(const uint64_t *a, const uint64_t *b, int64_t k) {
    int64_t s = 0;
    for (int64_t i = 0; i < k; i++) s += __builtin_popcountll(a[i] ^ b[i]);
    return s;
}

__attribute__((target("avx2,popcnt")))
static inline __m256i popcnt_bytes_avx2(__m256i v) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    __m256i lo = _mm256_and_si256(v, low);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

__attribute__((target("avx2,popcnt")))
static inline int64_t hsum_avx2(__m256i v) {
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}

/* Four output channels against one im2col row: byte counters flushed every 31 vectors (8 * 31 < 256). */
__attribute__((target("avx2,popcnt")))
static void dot4_avx2(const uint64_t *a, const uint64_t *b, int64_t stride, int64_t k, int64_t *out) {
    const __m256i zero = _mm256_setzero_si256();
    __m256i t0 = zero, t1 = zero, t2 = zero, t3 = zero;
    int64_t nv = k / 4, i = 0;
    while (i < nv) {
        int64_t end = i + 31 < nv ? i + 31 : nv;
        __m256i c0 = zero, c1 = zero, c2 = zero, c3 = zero;
        for (; i < end; i++) {
            __m256i x = _mm256_loadu_si256((const __m256i *)(a + 4 * i));
            c0 = _mm256_add_epi8(c0, popcnt_bytes_avx2(_mm256_xor_si256(x, _mm256_loadu_si256((const __m256i *)(b + 4 * i)))));
            c1 = _mm256_add_epi8(c1, popcnt_bytes_avx2(_mm256_xor_si256(x, _mm256_loadu_si256((const __m256i *)(b + stride + 4 * i)))));
            c2 = _mm256_add_epi8(c2, popcnt_bytes_avx2(_mm256_xor_si256(x, _mm256_loadu_si256((const __m256i *)(b + 2 * stride + 4 * i)))));
            c3 = _mm256_add_epi8(c3, popcnt_bytes_avx2(_mm256_xor_si256(x, _mm256_loadu_si256((const __m256i *)(b + 3 * stride + 4 * i)))));
        }
        t0 = _mm256_add_epi64(t0, _mm256_sad_epu8(c0, zero));
        t1 = _mm256_add_epi64(t1, _mm256_sad_epu8(c1, zero));
        t2 = _mm256_add_epi64(t2, _mm256_sad_epu8(c2, zero));
        t3 = _mm256_add_epi64(t3, _mm256_sad_epu8(c3, zero));
    }
    out[0] = hsum_avx2(t0); out[1] = hsum_avx2(t1); out[2] = hsum_avx2(t2); out[3] = hsum_avx2(t3);
    for (int64_t r = 4 * nv; r < k; r++) {
        uint64_t x = a[r];
        out[0] += __builtin_popcountll(x ^ b[r]);
        out[1] += __builtin_popcountll(x ^ b[stride + r]);
        out[2] += __builtin_popcountll(x ^ b[2 * stride + r]);
        out[3] += __builtin_popcountll(x ^ b[3 * stride + r]);
    }
}

__attribute__((target("avx512f,avx512vpopcntdq,popcnt")))
static inline int64_t dot_avx512(const uint64_t *a, const uint64_t *b, int64_t k) {
    __m512i acc = _mm512_setzero_si512();
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        __m512i v = _mm512_xor_si512(_mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(v));
    }
    if (i < k) {
        __mmask8 m = (__mmask8)((1u << (k - i)) - 1u);
        __m512i v = _mm512_xor_si512(_mm512_maskz_loadu_epi64(m, a + i), _mm512_maskz_loadu_epi64(m, b + i));
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(v));
    }
    return _mm512_reduce_add_epi64(acc);
}

__attribute__((target("avx512f,avx512vpopcntdq,popcnt")))
static void dot4_avx512(const uint64_t *a, const uint64_t *b, int64_t stride, int64_t k, int64_t *out) {
    __m512i t0 = _mm512_setzero_si512(), t1 = t0, t2 = t0, t3 = t0;
    int64_t i = 0;
    for (; i < k; i += 8) {
        __mmask8 m = k - i >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (k - i)) - 1u);
        __m512i x = _mm512_maskz_loadu_epi64(m, a + i);
        t0 = _mm512_add_epi64(t0, _mm512_popcnt_epi64(_mm512_xor_si512(x, _mm512_maskz_loadu_epi64(m, b + i))));
        t1 = _mm512_add_epi64(t1, _mm512_popcnt_epi64(_mm512_xor_si512(x, _mm512_maskz_loadu_epi64(m, b + stride + i))));
        t2 = _mm512_add_epi64(t2, _mm512_popcnt_epi64(_mm512_xor_si512(x, _mm512_maskz_loadu_epi64(m, b + 2 * stride + i))));
        t3 = _mm512_add_epi64(t3, _mm512_popcnt_epi64(_mm512_xor_si512(x, _mm512_maskz_loadu_epi64(m, b + 3 * stride + i))));
    }
    out[0] = _mm512_reduce_add_epi64(t0); out[1] = _mm512_reduce_add_epi64(t1);
    out[2] = _mm512_reduce_add_epi64(t2); out[3] = _mm512_reduce_add_epi64(t3);
}
#endif

/* ---- shared pieces: im2col of one output pixel, epilogue of one output pixel ---- */

static inline void im2col_pixel(const conv_args *a, int64_t n, int64_t oy, int64_t ox, uint64_t *col) {
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

static inline void pack_values(const float *v, int64_t c, int64_t g, int64_t wg, uint64_t *dst) {
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

static inline void epilogue_pixel(const conv_args *a, int64_t n, int64_t oy, int64_t ox, const int64_t *pop) {
    const int64_t cout = a->g * a->og, p = (n * a->oh + oy) * a->ow + ox;
    const int32_t *corr = a->corr ? a->corr + (oy * a->ow + ox) * cout : NULL;
    if (a->out_int) {
        int32_t *dst = a->out_int + p * cout;
        for (int64_t o = 0; o < cout; o++) dst[o] = (int32_t)(a->kvalid - 2 * pop[o] - (corr ? corr[o] : 0));
        return;
    }
    float *dst = a->out + p * cout;
    const float *res = a->res ? a->res + n * a->rsn + oy * a->rsh + ox * a->rsw : NULL;
    for (int64_t o = 0; o < cout; o++) {
        float d = (float)(a->kvalid - 2 * pop[o] - (corr ? corr[o] : 0));
        float v = a->scale[o] * d + a->shift[o];
        dst[o] = res ? v + res[o] : v;
    }
    if (a->pout) pack_values(dst, cout, a->g2, a->wg2, a->pout + p * a->g2 * a->wg2);
}

/* One conv per path: rows of output pixels split over threads; dots four channels at a time. */
#define DEFINE_CONV(NAME, ATTR, DOT1, DOT4)                                                        \
    ATTR static void NAME(const conv_args *a, int threads) {                                      \
        const int64_t kk = a->kh * a->kw * a->wg, cout = a->g * a->og, rows = a->n * a->oh;       \
        _Pragma("omp parallel num_threads(threads)") {                                            \
            uint64_t *col = malloc((size_t)(a->g * kk + 8) * sizeof(uint64_t));                   \
            int64_t *pop = malloc((size_t)(cout + 4) * sizeof(int64_t));                         \
            _Pragma("omp for schedule(static)") for (int64_t r = 0; r < rows; r++) {              \
                int64_t n = r / a->oh, oy = r % a->oh;                                            \
                for (int64_t ox = 0; ox < a->ow; ox++) {                                          \
                    im2col_pixel(a, n, oy, ox, col);                                              \
                    for (int64_t g = 0; g < a->g; g++) {                                          \
                        const uint64_t *cg = col + g * kk, *wg = a->w + g * a->og * kk;           \
                        int64_t o = 0;                                                            \
                        for (; o + 4 <= a->og; o += 4) DOT4(cg, wg + o * kk, kk, kk, pop + g * a->og + o); \
                        for (; o < a->og; o++) pop[g * a->og + o] = DOT1(cg, wg + o * kk, kk);    \
                    }                                                                             \
                    epilogue_pixel(a, n, oy, ox, pop);                                            \
                }                                                                                 \
            }                                                                                     \
            free(col);                                                                            \
            free(pop);                                                                            \
        }                                                                                         \
        (void)threads;                                                                            \
    }

static void dot4_portable(const uint64_t *a, const uint64_t *b, int64_t stride, int64_t k, int64_t *out) {
    for (int j = 0; j < 4; j++) out[j] = dot_portable(a, b + j * stride, k);
}

#ifdef B2_X86
__attribute__((target("popcnt")))
static void dot4_popcnt(const uint64_t *a, const uint64_t *b, int64_t stride, int64_t k, int64_t *out) {
    int64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int64_t i = 0; i < k; i++) {
        uint64_t x = a[i];
        s0 += __builtin_popcountll(x ^ b[i]);
        s1 += __builtin_popcountll(x ^ b[stride + i]);
        s2 += __builtin_popcountll(x ^ b[2 * stride + i]);
        s3 += __builtin_popcountll(x ^ b[3 * stride + i]);
    }
    out[0] = s0; out[1] = s1; out[2] = s2; out[3] = s3;
}
DEFINE_CONV(conv_popcnt, __attribute__((target("popcnt"))), dot_popcnt, dot4_popcnt)
DEFINE_CONV(conv_avx2, __attribute__((target("avx2,popcnt"))), dot_popcnt, dot4_avx2)
DEFINE_CONV(conv_avx512, __attribute__((target("avx512f,avx512vpopcntdq,popcnt"))), dot_avx512, dot4_avx512)
#endif
DEFINE_CONV(conv_portable, , dot_portable, dot4_portable)

/* ---- CPU support ---- */

static int path_supported(int path) {
#ifdef B2_X86
    __builtin_cpu_init();
    if (path == PATH_AVX512) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
    if (path == PATH_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
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
 *      scale, shift, res, rsn, rsh, rsw, pout, g2, wg2); pointers are integers (0 = none). */
static PyObject *py_conv(PyObject *self, PyObject *args) {
    (void)self;
    int path, threads;
    unsigned long long px, pw, pcorr, pint, pout_f, pscale, pshift, pres, ppout;
    conv_args a;
    if (!PyArg_ParseTuple(args, "iiKKLLLLLLLLLLLLLKKKKKKLLLKLL", &path, &threads, &px, &pw, &a.n, &a.h, &a.wd,
                          &a.g, &a.wg, &a.og, &a.kh, &a.kw, &a.sy, &a.sx, &a.oh, &a.ow, &a.kvalid, &pcorr,
                          &pint, &pout_f, &pscale, &pshift, &pres, &a.rsn, &a.rsh, &a.rsw, &ppout, &a.g2, &a.wg2))
        return NULL;
    if (!check_path(path)) return NULL;
    a.x = (const uint64_t *)(uintptr_t)px; a.w = (const uint64_t *)(uintptr_t)pw;
    a.corr = (const int32_t *)(uintptr_t)pcorr; a.out_int = (int32_t *)(uintptr_t)pint;
    a.out = (float *)(uintptr_t)pout_f; a.scale = (const float *)(uintptr_t)pscale;
    a.shift = (const float *)(uintptr_t)pshift; a.res = (const float *)(uintptr_t)pres;
    a.pout = (uint64_t *)(uintptr_t)ppout;
    if (threads < 1) threads = 1;
    Py_BEGIN_ALLOW_THREADS
#ifdef B2_X86
    if (path == PATH_AVX512) conv_avx512(&a, threads);
    else if (path == PATH_AVX2) conv_avx2(&a, threads);
    else if (__builtin_cpu_supports("popcnt")) conv_popcnt(&a, threads);
    else conv_portable(&a, threads);
#else
    conv_portable(&a, threads);
#endif
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* pack(threads, x, n, h, w, c, sn, sh, sw, out, g, wg): float NHWC (channel stride 1) -> [N, H, W, G, Wg]. */
static PyObject *py_pack(PyObject *self, PyObject *args) {
    (void)self;
    int threads;
    unsigned long long px, pout;
    long long n, h, w, c, sn, sh, sw, g, wg;
    if (!PyArg_ParseTuple(args, "iKLLLLLLLKLL", &threads, &px, &n, &h, &w, &c, &sn, &sh, &sw, &pout, &g, &wg))
        return NULL;
    const float *x = (const float *)(uintptr_t)px;
    uint64_t *out = (uint64_t *)(uintptr_t)pout;
    if (threads < 1) threads = 1;
    Py_BEGIN_ALLOW_THREADS
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (long long r = 0; r < n * h; r++) {
        long long ni = r / h, yi = r % h;
        for (long long xi = 0; xi < w; xi++)
            pack_values(x + ni * sn + yi * sh + xi * sw, c, g, wg, out + ((ni * h + yi) * w + xi) * g * wg);
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"supported", py_supported, METH_VARARGS, "supported(path) -> bool: does this CPU run the path."},
    {"conv", py_conv, METH_VARARGS, "Packed XNOR-popcount convolution (see bitops.c)."},
    {"pack", py_pack, METH_VARARGS, "Sign-pack a float NHWC tensor into 64-bit words."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_bitops", "b2track packed binary kernels", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__bitops(void) { return PyModule_Create(&module); }
