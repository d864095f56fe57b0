// Optimizer updates for the parameter server's apply path and for one-process training. The server stages
// each update out of place (new value and slots into spare buffers, kept only when all finite); doing the
// update, the staging and the finiteness check in one pass reads each buffer once, where copying then
// updating then scanning read them three times.
//
// Products and sums are rounded as written: no fused multiply-add, so the AVX2 and portable paths agree
// bit for bit, and a cluster in sync mode computes exactly what one process does.
#include "CKernels.h"

#include <math.h>

#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define CK_OPT_X86 1
#include <immintrin.h>
#endif

// ---- portable path --------------------------------------------------------------------------------

// Each returns the sum of out * 0 over its outputs: 0 when all are finite, NaN otherwise.
static float sgd_c(ptrdiff_t n, float lr, float scale, const float *value, const float *grad, float *value_out) {
    float bad = 0;
    for (ptrdiff_t k = 0; k < n; k++) {
        float g = grad[k] * scale;
        float x = value[k] - lr * g;
        value_out[k] = x;
        bad += x * 0.0f;
    }
    return bad;
}

static float momentum_c(ptrdiff_t n, float lr, float mu, float scale, const float *value, const float *first,
                        const float *grad, float *value_out, float *first_out) {
    float bad = 0;
    for (ptrdiff_t k = 0; k < n; k++) {
        float g = grad[k] * scale;
        float m = mu * first[k] + g;
        float x = value[k] - lr * m;
        first_out[k] = m;
        value_out[k] = x;
        bad += m * 0.0f + x * 0.0f;
    }
    return bad;
}

static float adam_c(ptrdiff_t n, float lr, float b1, float b2, float eps, float scale, const float *value,
                    const float *first, const float *second, const float *grad, float *value_out, float *first_out,
                    float *second_out) {
    const float c1 = 1 - b1, c2 = 1 - b2;
    float bad = 0;
    for (ptrdiff_t k = 0; k < n; k++) {
        float g = grad[k] * scale;
        float m = b1 * first[k] + c1 * g;
        float v = b2 * second[k] + c2 * g * g;
        float x = value[k] - lr * m / (sqrtf(v) + eps);
        first_out[k] = m;
        second_out[k] = v;
        value_out[k] = x;
        bad += m * 0.0f + v * 0.0f + x * 0.0f;
    }
    return bad;
}

static int finite_c(ptrdiff_t n, const float *x) {
    float bad = 0;
    for (ptrdiff_t k = 0; k < n; k++) bad += x[k] * 0.0f;
    return bad == 0;
}

// ---- AVX2 path ------------------------------------------------------------------------------------

#ifdef CK_OPT_X86
#define CK_OPT_AVX2 __attribute__((target("avx2")))

CK_OPT_AVX2 static float horizontal_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

CK_OPT_AVX2 static float sgd_avx2(ptrdiff_t n, float lr, float scale, const float *value, const float *grad,
                                  float *value_out) {
    const __m256 vlr = _mm256_set1_ps(lr), vs = _mm256_set1_ps(scale), zero = _mm256_setzero_ps();
    __m256 bad = zero;
    ptrdiff_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 g = _mm256_mul_ps(_mm256_loadu_ps(grad + k), vs);
        __m256 x = _mm256_sub_ps(_mm256_loadu_ps(value + k), _mm256_mul_ps(vlr, g));
        _mm256_storeu_ps(value_out + k, x);
        bad = _mm256_add_ps(bad, _mm256_mul_ps(x, zero));
    }
    return horizontal_sum(bad) + sgd_c(n - k, lr, scale, value + k, grad + k, value_out + k);
}

CK_OPT_AVX2 static float momentum_avx2(ptrdiff_t n, float lr, float mu, float scale, const float *value,
                                       const float *first, const float *grad, float *value_out, float *first_out) {
    const __m256 vlr = _mm256_set1_ps(lr), vmu = _mm256_set1_ps(mu), vs = _mm256_set1_ps(scale);
    const __m256 zero = _mm256_setzero_ps();
    __m256 bad = zero;
    ptrdiff_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 g = _mm256_mul_ps(_mm256_loadu_ps(grad + k), vs);
        __m256 m = _mm256_add_ps(_mm256_mul_ps(vmu, _mm256_loadu_ps(first + k)), g);
        __m256 x = _mm256_sub_ps(_mm256_loadu_ps(value + k), _mm256_mul_ps(vlr, m));
        _mm256_storeu_ps(first_out + k, m);
        _mm256_storeu_ps(value_out + k, x);
        bad = _mm256_add_ps(bad, _mm256_add_ps(_mm256_mul_ps(m, zero), _mm256_mul_ps(x, zero)));
    }
    return horizontal_sum(bad) +
           momentum_c(n - k, lr, mu, scale, value + k, first + k, grad + k, value_out + k, first_out + k);
}

CK_OPT_AVX2 static float adam_avx2(ptrdiff_t n, float lr, float b1, float b2, float eps, float scale,
                                   const float *value, const float *first, const float *second, const float *grad,
                                   float *value_out, float *first_out, float *second_out) {
    const __m256 vlr = _mm256_set1_ps(lr), vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2);
    const __m256 vc1 = _mm256_set1_ps(1 - b1), vc2 = _mm256_set1_ps(1 - b2), veps = _mm256_set1_ps(eps);
    const __m256 vs = _mm256_set1_ps(scale), zero = _mm256_setzero_ps();
    __m256 bad = zero;
    ptrdiff_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 g = _mm256_mul_ps(_mm256_loadu_ps(grad + k), vs);
        __m256 m = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(first + k)), _mm256_mul_ps(vc1, g));
        __m256 v = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(second + k)),
                                 _mm256_mul_ps(_mm256_mul_ps(vc2, g), g));
        __m256 step = _mm256_div_ps(_mm256_mul_ps(vlr, m), _mm256_add_ps(_mm256_sqrt_ps(v), veps));
        __m256 x = _mm256_sub_ps(_mm256_loadu_ps(value + k), step);
        _mm256_storeu_ps(first_out + k, m);
        _mm256_storeu_ps(second_out + k, v);
        _mm256_storeu_ps(value_out + k, x);
        bad = _mm256_add_ps(bad, _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(m, zero), _mm256_mul_ps(v, zero)),
                                               _mm256_mul_ps(x, zero)));
    }
    return horizontal_sum(bad) + adam_c(n - k, lr, b1, b2, eps, scale, value + k, first + k, second + k, grad + k,
                                        value_out + k, first_out + k, second_out + k);
}

CK_OPT_AVX2 static int finite_avx2(ptrdiff_t n, const float *x) {
    const __m256 zero = _mm256_setzero_ps();
    __m256 bad = zero;
    ptrdiff_t k = 0;
    for (; k + 8 <= n; k += 8) bad = _mm256_add_ps(bad, _mm256_mul_ps(_mm256_loadu_ps(x + k), zero));
    return horizontal_sum(bad) == 0 && finite_c(n - k, x + k);
}
#endif

// ---- entry points ---------------------------------------------------------------------------------

int ck_optimizer_update(int kind, ptrdiff_t n, float lr, float momentum_or_beta1, float beta2, float epsilon,
                        float scale, const float *value, const float *first, const float *second, const float *grad,
                        float *value_out, float *first_out, float *second_out) {
    float bad;
    int wide = 0;
#ifdef CK_OPT_X86
    wide = ck_vectorised();
#endif
    switch (kind) {
    case 0:
#ifdef CK_OPT_X86
        if (wide) {
            bad = sgd_avx2(n, lr, scale, value, grad, value_out);
            break;
        }
#endif
        bad = sgd_c(n, lr, scale, value, grad, value_out);
        break;
    case 1:
#ifdef CK_OPT_X86
        if (wide) {
            bad = momentum_avx2(n, lr, momentum_or_beta1, scale, value, first, grad, value_out, first_out);
            break;
        }
#endif
        bad = momentum_c(n, lr, momentum_or_beta1, scale, value, first, grad, value_out, first_out);
        break;
    default:
#ifdef CK_OPT_X86
        if (wide) {
            bad = adam_avx2(n, lr, momentum_or_beta1, beta2, epsilon, scale, value, first, second, grad, value_out,
                            first_out, second_out);
            break;
        }
#endif
        bad = adam_c(n, lr, momentum_or_beta1, beta2, epsilon, scale, value, first, second, grad, value_out,
                     first_out, second_out);
        break;
    }
    (void)wide;
    return bad == 0;
}

int ck_all_finite(ptrdiff_t n, const float *x) {
#ifdef CK_OPT_X86
    if (ck_vectorised()) return finite_avx2(n, x);
#endif
    return finite_c(n, x);
}
