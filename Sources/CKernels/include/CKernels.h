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

/// Whether the AVX2 + FMA kernels are in use (else portable C with libm).
int ck_vectorised(void);

#endif
