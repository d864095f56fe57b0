// Hand-vectorised elementwise kernels for the LSTM steps. Swift compiles for baseline x86-64 (SSE2),
// where eight-wide float code is split in two and spills; these functions are compiled for AVX2 + FMA
// through target attributes and chosen at run time, with a portable C path for other CPUs.
#include "CKernels.h"

#include <math.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define CK_X86 1
#include <immintrin.h>
#endif

// ---- portable path --------------------------------------------------------------------------------

static inline float sigmoid1(float x) { return 1.0f / (1.0f + expf(-x)); }

static void gates_forward_c(ptrdiff_t rows, ptrdiff_t n, const float *z, const float *bias, float fb,
                            const float *c_prev, float *saved, float *c, float *h, ptrdiff_t hs, float *h2,
                            ptrdiff_t h2s) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *zr = z + r * 4 * n, *cp = c_prev + r * n;
        float *s = saved + r * 5 * n, *cr = c + r * n;
        for (ptrdiff_t k = 0; k < n; k++) {
            float i = sigmoid1(zr[k] + bias[k]);
            float j = tanhf(zr[n + k] + bias[n + k]);
            float f = sigmoid1(zr[2 * n + k] + bias[2 * n + k] + fb);
            float o = sigmoid1(zr[3 * n + k] + bias[3 * n + k]);
            float cn = f * cp[k] + i * j;
            float tc = tanhf(cn);
            s[k] = i, s[n + k] = j, s[2 * n + k] = f, s[3 * n + k] = o, s[4 * n + k] = tc;
            cr[k] = cn;
            h[r * hs + k] = o * tc;
            if (h2) h2[r * h2s + k] = o * tc;
        }
    }
}

static void gates_backward_c(ptrdiff_t rows, ptrdiff_t n, const float *saved, const float *c_prev, float *dc,
                             const float *dh, float *dz) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *s = saved + r * 5 * n, *cp = c_prev + r * n, *dhr = dh + r * n;
        float *dcr = dc + r * n, *dzr = dz + r * 4 * n;
        for (ptrdiff_t k = 0; k < n; k++) {
            float i = s[k], j = s[n + k], f = s[2 * n + k], o = s[3 * n + k], tc = s[4 * n + k];
            float d = dcr[k] + dhr[k] * o * (1 - tc * tc);
            dzr[k] = d * j * i * (1 - i);
            dzr[n + k] = d * i * (1 - j * j);
            dzr[2 * n + k] = d * cp[k] * f * (1 - f);
            dzr[3 * n + k] = dhr[k] * tc * o * (1 - o);
            dcr[k] = d * f;
        }
    }
}

// ---- AVX2 + FMA path ------------------------------------------------------------------------------

#ifdef CK_X86
#define CK_AVX2 __attribute__((target("avx2,fma")))

// e^x: Cody-Waite reduction x = k ln2 + r and a degree-7 polynomial (the same as the Swift FastMath.exp),
// relative error about 2e-7.
CK_AVX2 static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.69314575f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(1.4286068e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

CK_AVX2 static inline __m256 sigmoid8(__m256 x) {
    __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

CK_AVX2 static inline __m256 tanh8(__m256 x) {
    __m256 one = _mm256_set1_ps(1.0f);
    __m256 e = exp8(_mm256_mul_ps(x, _mm256_set1_ps(-2.0f)));
    return _mm256_sub_ps(_mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(one, e)), one);
}

CK_AVX2 static void gates_forward_avx2(ptrdiff_t rows, ptrdiff_t n, const float *z, const float *bias, float fb,
                                       const float *c_prev, float *saved, float *c, float *h, ptrdiff_t hs,
                                       float *h2, ptrdiff_t h2s) {
    __m256 fbv = _mm256_set1_ps(fb);
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *zr = z + r * 4 * n, *cp = c_prev + r * n;
        float *s = saved + r * 5 * n, *cr = c + r * n, *hr = h + r * hs;
        float *h2r = h2 ? h2 + r * h2s : 0;
        for (ptrdiff_t k = 0; k + 8 <= n; k += 8) {
            __m256 i = sigmoid8(_mm256_add_ps(_mm256_loadu_ps(zr + k), _mm256_loadu_ps(bias + k)));
            __m256 j = tanh8(_mm256_add_ps(_mm256_loadu_ps(zr + n + k), _mm256_loadu_ps(bias + n + k)));
            __m256 f = sigmoid8(
                _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(zr + 2 * n + k), _mm256_loadu_ps(bias + 2 * n + k)), fbv));
            __m256 o = sigmoid8(_mm256_add_ps(_mm256_loadu_ps(zr + 3 * n + k), _mm256_loadu_ps(bias + 3 * n + k)));
            __m256 cn = _mm256_fmadd_ps(f, _mm256_loadu_ps(cp + k), _mm256_mul_ps(i, j));
            __m256 tc = tanh8(cn);
            __m256 hn = _mm256_mul_ps(o, tc);
            _mm256_storeu_ps(s + k, i);
            _mm256_storeu_ps(s + n + k, j);
            _mm256_storeu_ps(s + 2 * n + k, f);
            _mm256_storeu_ps(s + 3 * n + k, o);
            _mm256_storeu_ps(s + 4 * n + k, tc);
            _mm256_storeu_ps(cr + k, cn);
            _mm256_storeu_ps(hr + k, hn);
            if (h2r) _mm256_storeu_ps(h2r + k, hn);
        }
    }
}

CK_AVX2 static void gates_backward_avx2(ptrdiff_t rows, ptrdiff_t n, const float *saved, const float *c_prev,
                                        float *dc, const float *dh, float *dz) {
    __m256 one = _mm256_set1_ps(1.0f);
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *s = saved + r * 5 * n, *cp = c_prev + r * n, *dhr = dh + r * n;
        float *dcr = dc + r * n, *dzr = dz + r * 4 * n;
        for (ptrdiff_t k = 0; k + 8 <= n; k += 8) {
            __m256 i = _mm256_loadu_ps(s + k), j = _mm256_loadu_ps(s + n + k);
            __m256 f = _mm256_loadu_ps(s + 2 * n + k), o = _mm256_loadu_ps(s + 3 * n + k);
            __m256 tc = _mm256_loadu_ps(s + 4 * n + k), dhv = _mm256_loadu_ps(dhr + k);
            // d = dc + dh * o * (1 - tc^2)
            __m256 d = _mm256_fmadd_ps(_mm256_mul_ps(dhv, o), _mm256_fnmadd_ps(tc, tc, one), _mm256_loadu_ps(dcr + k));
            _mm256_storeu_ps(dzr + k, _mm256_mul_ps(_mm256_mul_ps(d, j), _mm256_mul_ps(i, _mm256_sub_ps(one, i))));
            _mm256_storeu_ps(dzr + n + k, _mm256_mul_ps(_mm256_mul_ps(d, i), _mm256_fnmadd_ps(j, j, one)));
            _mm256_storeu_ps(dzr + 2 * n + k, _mm256_mul_ps(_mm256_mul_ps(d, _mm256_loadu_ps(cp + k)),
                                                            _mm256_mul_ps(f, _mm256_sub_ps(one, f))));
            _mm256_storeu_ps(dzr + 3 * n + k, _mm256_mul_ps(_mm256_mul_ps(dhv, tc), _mm256_mul_ps(o, _mm256_sub_ps(one, o))));
            _mm256_storeu_ps(dcr + k, _mm256_mul_ps(d, f));
        }
    }
}

static int avx2_state = -1;

static int use_avx2(void) {
    if (avx2_state < 0) {
        __builtin_cpu_init();
        avx2_state = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return avx2_state;
}
#else
static int use_avx2(void) { return 0; }
#endif

int ck_vectorised(void) { return use_avx2(); }

void ck_lstm_gates_forward(ptrdiff_t rows, ptrdiff_t n, const float *z, const float *bias, float fb,
                           const float *c_prev, float *saved, float *c, float *h, ptrdiff_t hs, float *h2,
                           ptrdiff_t h2s) {
#ifdef CK_X86
    if (n % 8 == 0 && use_avx2()) {
        gates_forward_avx2(rows, n, z, bias, fb, c_prev, saved, c, h, hs, h2, h2s);
        return;
    }
#endif
    gates_forward_c(rows, n, z, bias, fb, c_prev, saved, c, h, hs, h2, h2s);
}

void ck_lstm_gates_backward(ptrdiff_t rows, ptrdiff_t n, const float *saved, const float *c_prev, float *dc,
                            const float *dh, float *dz) {
#ifdef CK_X86
    if (n % 8 == 0 && use_avx2()) {
        gates_backward_avx2(rows, n, saved, c_prev, dc, dh, dz);
        return;
    }
#endif
    gates_backward_c(rows, n, saved, c_prev, dc, dh, dz);
}

// ---- attention ------------------------------------------------------------------------------------

// Eight partial sums, so the compiler can keep them in one vector register without reassociating.
static inline float dot(const float *x, const float *y, ptrdiff_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    ptrdiff_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; l++) acc[l] += x[k + l] * y[k + l];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; k < n; k++) s += x[k] * y[k];
    return s;
}

// e^x without a libm call (the exp8 polynomial, one lane), so the softmax loop vectorises.
static inline float fast_exp(float x) {
    x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
    float k = rintf(x * 1.44269504f);
    float r = x - k * 0.69314575f - k * 1.4286068e-6f;
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { int i; float f; } e = {((int)k + 127) << 23};
    return p * e.f;
}

static inline void axpy(float alpha, const float *x, float *y, ptrdiff_t n) {
    for (ptrdiff_t k = 0; k < n; k++) y[k] += alpha * x[k];
}

static inline void softmax(float *x, ptrdiff_t n) {
    float mx = -INFINITY;
    for (ptrdiff_t k = 0; k < n; k++) mx = x[k] > mx ? x[k] : mx;
    float sum = 0;
    for (ptrdiff_t k = 0; k < n; k++) {
        x[k] = fast_exp(x[k] - mx);
        sum += x[k];
    }
    float inv = 1.0f / sum;
    for (ptrdiff_t k = 0; k < n; k++) x[k] *= inv;
}

#ifdef CK_X86
CK_AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

CK_AVX2 static inline float dot_avx2(const float *x, const float *y, ptrdiff_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    ptrdiff_t k = 0;
    for (; k + 16 <= n; k += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), _mm256_loadu_ps(y + k), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 8), _mm256_loadu_ps(y + k + 8), a1);
    }
    for (; k + 8 <= n; k += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), _mm256_loadu_ps(y + k), a0);
    float s = hsum8(_mm256_add_ps(a0, a1));
    for (; k < n; k++) s += x[k] * y[k];
    return s;
}

CK_AVX2 static inline void softmax_avx2(float *x, ptrdiff_t n) {
    float mx = -INFINITY;
    for (ptrdiff_t k = 0; k < n; k++) mx = x[k] > mx ? x[k] : mx;
    __m256 m = _mm256_set1_ps(mx), acc = _mm256_setzero_ps();
    ptrdiff_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + k), m));
        _mm256_storeu_ps(x + k, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = hsum8(acc);
    for (; k < n; k++) {
        x[k] = fast_exp(x[k] - mx);
        sum += x[k];
    }
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (k = 0; k + 8 <= n; k += 8) _mm256_storeu_ps(x + k, _mm256_mul_ps(_mm256_loadu_ps(x + k), inv));
    for (; k < n; k++) x[k] *= 1.0f / sum;
}
#endif

#define CK_FN(name) name##_c
#define CK_ATTR
#define CK_DOT dot
#define CK_SOFTMAX softmax
#include "attention_body.h"
#undef CK_FN
#undef CK_ATTR
#undef CK_DOT
#undef CK_SOFTMAX
#ifdef CK_X86
#define CK_FN(name) name##_avx2
#define CK_ATTR CK_AVX2
#define CK_DOT dot_avx2
#define CK_SOFTMAX softmax_avx2
#include "attention_body.h"
#undef CK_FN
#undef CK_ATTR
#undef CK_DOT
#undef CK_SOFTMAX
#endif

void ck_attention_forward(ptrdiff_t b, ptrdiff_t t, ptrdiff_t n, const float *memory, const float *h, ptrdiff_t hs,
                          float *a, float *ctx, ptrdiff_t cs) {
#ifdef CK_X86
    if (use_avx2()) return attention_forward_avx2(b, t, n, memory, h, hs, a, ctx, cs);
#endif
    attention_forward_c(b, t, n, memory, h, hs, a, ctx, cs);
}

void ck_attention_backward(ptrdiff_t b, ptrdiff_t t, ptrdiff_t n, const float *memory, const float *a,
                           const float *da_out, const float *dctx, ptrdiff_t dcs, const float *dh_direct,
                           ptrdiff_t dhds, const float *dh_next, ptrdiff_t dhns, float *ds, float *dh) {
#ifdef CK_X86
    if (use_avx2())
        return attention_backward_avx2(b, t, n, memory, a, da_out, dctx, dcs, dh_direct, dhds, dh_next, dhns, ds, dh);
#endif
    attention_backward_c(b, t, n, memory, a, da_out, dctx, dcs, dh_direct, dhds, dh_next, dhns, ds, dh);
}

void ck_memory_gradient(ptrdiff_t b, ptrdiff_t t, ptrdiff_t n, ptrdiff_t steps, const float *a, const float *ds,
                        const float *dctx, const float *h, ptrdiff_t rs, float *dmemory) {
#ifdef CK_X86
    if (use_avx2()) return memory_gradient_avx2(b, t, n, steps, a, ds, dctx, h, rs, dmemory);
#endif
    memory_gradient_c(b, t, n, steps, a, ds, dctx, h, rs, dmemory);
}
