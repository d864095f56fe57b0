#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>

/// The LSTM gates of one step for `rows` rows of `n` units, from pre-activations z [rows, 4n] (gate order
/// i, j, f, o, bias not yet added) and bias [4n]: c = sigmoid(f + forget_bias) * c_prev + sigmoid(i) * tanh(j),
/// h = sigmoid(o) * tanh(c). Saves sigmoid(i), tanh(j), sigmoid(f), sigmoid(o), tanh(c) per row
/// ([rows, 5n]); writes c [rows, n], h (row stride h_stride) and, when h2 is not NULL, h2 too.
void ck_lstm_gates_forward(ptrdiff_t rows, ptrdiff_t n, const float *z, const float *bias, float forget_bias,
                           const float *c_prev, float *saved, float *c, float *h, ptrdiff_t h_stride, float *h2,
                           ptrdiff_t h2_stride);

/// The gradient of ck_lstm_gates_forward: from dh [rows, n] and dc [rows, n] (overwritten with d c_prev)
/// to dz [rows, 4n], written, not added.
void ck_lstm_gates_backward(ptrdiff_t rows, ptrdiff_t n, const float *saved, const float *c_prev, float *dc,
                            const float *dh, float *dz);

/// Luong dot attention of one decoder step for b examples: scores memory[r] (t x n) . h[r] (row stride hs),
/// softmax into a [b, t], context ctx[r] = a[r] . memory[r] (row stride cs).
void ck_attention_forward(ptrdiff_t b, ptrdiff_t t, ptrdiff_t n, const float *memory, const float *h, ptrdiff_t hs,
                          float *a, float *ctx, ptrdiff_t cs);

/// Its gradient, but for memory's: d scores into ds [b, t] (through the softmax, from d ctx and the
/// weights' own gradient da_out), and dh [b, n] = dh_direct + dh_next + memory^T . d scores (written).
void ck_attention_backward(ptrdiff_t b, ptrdiff_t t, ptrdiff_t n, const float *memory, const float *a,
                           const float *da_out, const float *dctx, ptrdiff_t dcs, const float *dh_direct,
                           ptrdiff_t dhds, const float *dh_next, ptrdiff_t dhns, float *ds, float *dh);

/// The memory's gradient from every decoder step in one pass: dmemory[r, k] += sum over steps s of
/// a_s[r, k] dctx_s[r] + ds_s[r, k] h_s[r], where step s, example r is row s b + r of a and ds ([steps, b, t])
/// and of dctx and h (row stride rs).
void ck_memory_gradient(ptrdiff_t b, ptrdiff_t t, ptrdiff_t n, ptrdiff_t steps, const float *a, const float *ds,
                        const float *dctx, const float *h, ptrdiff_t rs, float *dmemory);

/// One optimizer update of n elements, out of place: reads value, first, second and grad and writes
/// value_out, first_out, second_out (each may be the same buffer as its input, for an update in place).
/// kind 0 is sgd (value only), 1 momentum (value, first), 2 Adam (all three); lr is Adam's bias-corrected
/// step size. grad is multiplied by scale first (1 for no clipping). Every product and sum is rounded as
/// written (no fused multiply-add), so the vector and portable paths give the same bits.
/// Returns 1 when every output written is finite, 0 otherwise: the server keeps an update only then.
int ck_optimizer_update(int kind, ptrdiff_t n, float lr, float momentum_or_beta1, float beta2, float epsilon,
                        float scale, const float *value, const float *first, const float *second, const float *grad,
                        float *value_out, float *first_out, float *second_out);

/// Whether all n floats are finite (no NaN, no infinity).
int ck_all_finite(ptrdiff_t n, const float *x);

/// Whether the AVX2 + FMA kernels are in use (else portable C with libm).
int ck_vectorised(void);

#endif
