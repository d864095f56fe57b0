// The attention kernels' bodies, compiled twice by kernels.c: once for AVX2 + FMA, once portable.
// CK_FN(name) names this copy; CK_ATTR gives its target attribute; CK_DOT and CK_SOFTMAX are its dot
// product and softmax. axpy is static inline, inlined into each copy and vectorised for its target.

CK_ATTR static void CK_FN(attention_forward)(ptrdiff_t b, ptrdiff_t t, ptrdiff_t n, const float *memory,
                                              const float *h, ptrdiff_t hs, float *a, float *ctx, ptrdiff_t cs) {
    for (ptrdiff_t r = 0; r < b; r++) {
        const float *mem = memory + r * t * n, *hr = h + r * hs;
        float *ar = a + r * t, *cr = ctx + r * cs;
        for (ptrdiff_t k = 0; k < t; k++) ar[k] = CK_DOT(mem + k * n, hr, n);
        CK_SOFTMAX(ar, t);
        for (ptrdiff_t j = 0; j < n; j++) cr[j] = 0;
        for (ptrdiff_t k = 0; k < t; k++) axpy(ar[k], mem + k * n, cr, n);
    }
}

CK_ATTR static void CK_FN(attention_backward)(ptrdiff_t b, ptrdiff_t t, ptrdiff_t n, const float *memory,
                                               const float *a, const float *da_out, const float *dctx,
                                               ptrdiff_t dcs, const float *dh_direct, ptrdiff_t dhds,
                                               const float *dh_next, ptrdiff_t dhns, float *ds, float *dh) {
    for (ptrdiff_t r = 0; r < b; r++) {
        const float *mem = memory + r * t * n, *ar = a + r * t, *dar = da_out + r * t, *dc = dctx + r * dcs;
        const float *hd = dh_direct + r * dhds, *hn = dh_next + r * dhns;
        float *dsr = ds + r * t, *dhr = dh + r * n;
        float all = 0;
        for (ptrdiff_t k = 0; k < t; k++) {
            dsr[k] = CK_DOT(mem + k * n, dc, n) + dar[k];
            all += dsr[k] * ar[k];
        }
        for (ptrdiff_t j = 0; j < n; j++) dhr[j] = hd[j] + hn[j];
        for (ptrdiff_t k = 0; k < t; k++) {
            dsr[k] = ar[k] * (dsr[k] - all);
            axpy(dsr[k], mem + k * n, dhr, n);
        }
    }
}

CK_ATTR static void CK_FN(memory_gradient)(ptrdiff_t b, ptrdiff_t t, ptrdiff_t n, ptrdiff_t steps, const float *a,
                                            const float *ds, const float *dctx, const float *h, ptrdiff_t rs,
                                            float *dmemory) {
    for (ptrdiff_t r = 0; r < b; r++) {
        for (ptrdiff_t k = 0; k < t; k++) {
            float *dst = dmemory + (r * t + k) * n;
            for (ptrdiff_t s = 0; s < steps; s++) {
                ptrdiff_t row = s * b + r;
                axpy(a[row * t + k], dctx + row * rs, dst, n);
                axpy(ds[row * t + k], h + row * rs, dst, n);
            }
        }
    }
}
