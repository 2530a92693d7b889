// cpu_affine.c: the CPU kernels for MLX affine weights (see cpu_linear.c for
// where they are used).
//  - A fused dequantize-and-dot for few input rows (decoding): per group g of
//    a weight row, sum_j x_j (s q_j + b) = s (sum_j x_j q_j) + b (sum_j x_j),
//    so the codes are turned into floats and dotted without writing a
//    dequantized row, and the group sums of x are computed once per call.
//  - Row dequantization (s q + b) for the blocked sgemm path (prefill).
// 4- and 8-bit codes (GGUF Q4_0/Q4_1/Q8_0 and the common MLX widths) have
// AVX2/FMA versions chosen at run time (the build has no -march); every width
// has a portable version, which is also the reference the AVX2 one is tested
// against (tests/unit/test_affine.c runs both through the backend).
#include <string.h>

#include "cpu_ops.h"
#include "ctune/affine_quant.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CT_CPU_X86 1
#endif

static float load_param(const void *p, ct_dtype t, int64_t i) {
    switch (t) {
    case CT_F16: return ct_f16_to_f32(((const uint16_t *)p)[i]);
    case CT_BF16: return ct_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

// Byte offsets of row r's codes, scales and biases.
typedef struct qrow {
    const uint8_t *codes;
    const void *scales, *biases;
} qrow;

static qrow weight_row(const ct_weight *w, int64_t r) {
    int64_t groups = w->cols / w->group_size;
    size_t esz = ct_dtype_size(w->dtype);
    return (qrow){(const uint8_t *)((const uint32_t *)w->data + r * ct_affine_row_words(w->cols, w->bits)),
                  (const char *)w->scales + (size_t)(r * groups) * esz,
                  (const char *)w->biases + (size_t)(r * groups) * esz};
}

// ---- input preparation

size_t ct_cpu_affine_scratch_floats(const ct_weight *w, int64_t N) {
    return (size_t)(N * w->cols + N * (w->cols / w->group_size));
}

// inp (N, In) -> scratch = xp (N, In), xsum (N, In/group_size). xp is inp,
// except for 4 bits where each chunk of 32 values is stored evens then odds
// (x0 x2 .. x30 x1 x3 .. x31): byte i of a chunk holds codes 2i (low nibble)
// and 2i+1 (high nibble), so both nibble streams meet contiguous x.
void ct_cpu_affine_prepare(const ct_weight *w, const float *inp, int64_t N, float *scratch) {
    int64_t In = w->cols, gs = w->group_size, groups = In / gs;
    float *xp = scratch, *xsum = scratch + N * In;
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * In;
        float *y = xp + n * In;
        if (w->bits == 4) {
            for (int64_t c = 0; c < In; c += 32)
                for (int i = 0; i < 16; i++) {
                    y[c + i] = x[c + 2 * i];
                    y[c + 16 + i] = x[c + 2 * i + 1];
                }
        } else {
            memcpy(y, x, sizeof(float) * (size_t)In);
        }
        for (int64_t g = 0; g < groups; g++) {
            float s = 0.0f;
            for (int64_t j = 0; j < gs; j++)
                s += x[g * gs + j];
            xsum[n * groups + g] = s;
        }
    }
}

// ---- portable kernels

// sum_j x_j q_j over one group of codes (prepared x).
static float group_dot_portable(const uint8_t *p, const float *x, int bits, int gs) {
    float s = 0.0f;
    if (bits == 4) {
        for (int c = 0; c < gs; c += 32, p += 16, x += 32) {
#pragma omp simd reduction(+ : s)
            for (int i = 0; i < 16; i++)
                s += (float)(p[i] & 15) * x[i] + (float)(p[i] >> 4) * x[16 + i];
        }
    } else if (bits == 8) {
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < gs; i++)
            s += (float)p[i] * x[i];
    } else {
        uint8_t codes[128];
        ct_affine_unpack(p, gs, bits, codes);
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < gs; i++)
            s += (float)codes[i] * x[i];
    }
    return s;
}

static void row_dot_portable(const ct_weight *w, qrow q, const float *xp, const float *xsum, int64_t N, float *res) {
    int64_t In = w->cols, gs = w->group_size, groups = In / gs;
    for (int64_t n = 0; n < N; n++)
        res[n] = 0.0f;
    for (int64_t g = 0; g < groups; g++) {
        float s = load_param(q.scales, w->dtype, g), b = load_param(q.biases, w->dtype, g);
        const uint8_t *p = q.codes + g * gs * w->bits / 8;
        for (int64_t n = 0; n < N; n++)
            res[n] += s * group_dot_portable(p, xp + n * In + g * gs, w->bits, (int)gs) + b * xsum[n * groups + g];
    }
}

static void dequant_row_portable(const ct_weight *w, qrow q, float *dst) {
    ct_affine_dequantize_row((const uint32_t *)q.codes, q.scales, q.biases, w->dtype, w->cols, w->bits,
                             w->group_size, dst);
}

// ---- AVX2 + FMA kernels (4 and 8 bits)

#ifdef CT_CPU_X86
#define AVX2 __attribute__((target("avx2,fma,f16c")))
// the loops over rows and accumulators must unroll for the registers to be used
#define UNROLL _Pragma("GCC unroll 8")

AVX2 static inline float load_param_avx2(const void *p, ct_dtype t, int64_t i) {
    if (t == CT_F16)
        return _cvtsh_ss(((const uint16_t *)p)[i]);
    return load_param(p, t, i);
}

AVX2 static inline float hsum_avx2(__m256 v) {
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_shuffle_ps(a, a, 1));
    return _mm_cvtss_f32(a);
}

// 8 bytes -> 8 floats
AVX2 static inline __m256 bytes_to_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)); }

// The 32 codes of a chunk as 4 x 8 floats, in the order of the prepared x:
// 4 bits: evens 0..14, evens 16..30, odds 1..15, odds 17..31; 8 bits: in order.
AVX2 static inline void chunk_codes(const uint8_t *p, int bits, __m256 q[4]) {
    if (bits == 4) {
        __m128i v = _mm_loadu_si128((const __m128i *)p), mask = _mm_set1_epi8(15);
        __m128i lo = _mm_and_si128(v, mask), hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
        q[0] = bytes_to_ps(lo);
        q[1] = bytes_to_ps(_mm_srli_si128(lo, 8));
        q[2] = bytes_to_ps(hi);
        q[3] = bytes_to_ps(_mm_srli_si128(hi, 8));
    } else {
        UNROLL for (int k = 0; k < 4; k++)
            q[k] = bytes_to_ps(_mm_loadl_epi64((const __m128i *)(p + 8 * k)));
    }
}

// N input rows with K independent accumulators per row (N and K are
// constants after inlining, so the accumulators stay in registers; K > 1
// breaks the FMA dependency chain when there are few rows).
AVX2 static inline __attribute__((always_inline)) void row_dot_avx2_nk(const ct_weight *w, qrow q, const float *xp,
                                                                       const float *xsum, float *res, const int N,
                                                                       const int K) {
    int64_t In = w->cols, gs = w->group_size, groups = In / gs;
    int bits = w->bits;
    __m256 acc[CT_CPU_QDOT_MAX_N][4];
    float bsum[CT_CPU_QDOT_MAX_N];
    UNROLL for (int n = 0; n < N; n++) {
        UNROLL for (int k = 0; k < K; k++)
            acc[n][k] = _mm256_setzero_ps();
        bsum[n] = 0.0f;
    }
    for (int64_t g = 0; g < groups; g++) {
        __m256 sv = _mm256_set1_ps(load_param_avx2(q.scales, w->dtype, g));
        for (int64_t c = g * gs; c < (g + 1) * gs; c += 32) {
            __m256 qv[4];
            chunk_codes(q.codes + c * bits / 8, bits, qv);
            UNROLL for (int k = 0; k < 4; k++) {
                __m256 qs = _mm256_mul_ps(qv[k], sv);
                UNROLL for (int n = 0; n < N; n++)
                    acc[n][k % K] = _mm256_fmadd_ps(qs, _mm256_loadu_ps(xp + n * In + c + 8 * k), acc[n][k % K]);
            }
        }
        float b = load_param_avx2(q.biases, w->dtype, g);
        UNROLL for (int n = 0; n < N; n++)
            bsum[n] += b * xsum[n * groups + g];
    }
    UNROLL for (int n = 0; n < N; n++) {
        __m256 t = acc[n][0];
        UNROLL for (int k = 1; k < K; k++)
            t = _mm256_add_ps(t, acc[n][k]);
        res[n] = hsum_avx2(t) + bsum[n];
    }
}

AVX2 static void row_dot_avx2(const ct_weight *w, qrow q, const float *xp, const float *xsum, int64_t N,
                              float *res) {
    switch (N) {
    case 1: row_dot_avx2_nk(w, q, xp, xsum, res, 1, 4); break;
    case 2: row_dot_avx2_nk(w, q, xp, xsum, res, 2, 2); break;
    case 3: row_dot_avx2_nk(w, q, xp, xsum, res, 3, 1); break;
    case 4: row_dot_avx2_nk(w, q, xp, xsum, res, 4, 1); break;
    default: // 5..8 rows: two passes over the row's codes (still in L1)
        row_dot_avx2_nk(w, q, xp, xsum, res, 4, 1);
        row_dot_avx2(w, q, xp + 4 * w->cols, xsum + 4 * (w->cols / w->group_size), N - 4, res + 4);
        break;
    }
}

AVX2 static void dequant_row_avx2(const ct_weight *w, qrow q, float *dst) {
    int64_t gs = w->group_size, groups = w->cols / gs;
    for (int64_t g = 0; g < groups; g++) {
        __m256 sv = _mm256_set1_ps(load_param_avx2(q.scales, w->dtype, g));
        __m256 bv = _mm256_set1_ps(load_param_avx2(q.biases, w->dtype, g));
        for (int64_t c = g * gs; c < (g + 1) * gs; c += 32) {
            const uint8_t *p = q.codes + c * w->bits / 8;
            __m128i b0, b1; // codes c..c+15, c+16..c+31 as bytes
            if (w->bits == 4) {
                __m128i v = _mm_loadu_si128((const __m128i *)p), mask = _mm_set1_epi8(15);
                __m128i lo = _mm_and_si128(v, mask), hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
                b0 = _mm_unpacklo_epi8(lo, hi);
                b1 = _mm_unpackhi_epi8(lo, hi);
            } else {
                b0 = _mm_loadu_si128((const __m128i *)p);
                b1 = _mm_loadu_si128((const __m128i *)(p + 16));
            }
            float *o = dst + c;
            _mm256_storeu_ps(o, _mm256_fmadd_ps(sv, bytes_to_ps(b0), bv));
            _mm256_storeu_ps(o + 8, _mm256_fmadd_ps(sv, bytes_to_ps(_mm_srli_si128(b0, 8)), bv));
            _mm256_storeu_ps(o + 16, _mm256_fmadd_ps(sv, bytes_to_ps(b1), bv));
            _mm256_storeu_ps(o + 24, _mm256_fmadd_ps(sv, bytes_to_ps(_mm_srli_si128(b1, 8)), bv));
        }
    }
}

// (every AVX2 processor also has F16C, which clang's __builtin_cpu_supports cannot name)
static int simd_ok(const ct_weight *w) {
    return (w->bits == 4 || w->bits == 8) && ct_cpu_simd_enabled() && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma");
}
#else
static int simd_ok(const ct_weight *w) {
    (void)w;
    return 0;
}
#endif

// ---- entry points

void ct_cpu_affine_matvec(const ct_weight *w, const float *scratch, int64_t N, int64_t o0, int64_t o1,
                          float *out) {
    const float *xp = scratch, *xsum = scratch + N * w->cols;
    int simd = simd_ok(w);
    float res[CT_CPU_QDOT_MAX_N];
    for (int64_t o = o0; o < o1; o++) {
        qrow q = weight_row(w, o);
#ifdef CT_CPU_X86
        if (simd)
            row_dot_avx2(w, q, xp, xsum, N, res);
        else
#endif
            row_dot_portable(w, q, xp, xsum, N, res);
        for (int64_t n = 0; n < N; n++)
            out[n * w->rows + o] = res[n];
    }
    (void)simd;
}

void ct_cpu_affine_rows(const ct_weight *w, int64_t r0, int64_t n, float *dst) {
    int simd = simd_ok(w);
    for (int64_t i = 0; i < n; i++) {
        qrow q = weight_row(w, r0 + i);
#ifdef CT_CPU_X86
        if (simd)
            dequant_row_avx2(w, q, dst + i * w->cols);
        else
#endif
            dequant_row_portable(w, q, dst + i * w->cols);
    }
    (void)simd;
}
