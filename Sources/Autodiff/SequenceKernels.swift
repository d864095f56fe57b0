import BLAS
import CKernels
import Foundation

/// Pointer-level kernels shared by the whole-sequence ops (`LSTMSequenceOp`, `AttentionDecoderOp`):
/// the LSTM gates with the bias folded in, their gradient written rather than added, and the small
/// vector loops of dot-product attention. Eight floats at a time, as `FastMath`.
enum SequenceKernels {
    typealias Ptr = UnsafeMutablePointer<Float>
    typealias CPtr = UnsafePointer<Float>

    /// Whether the gates run in `CKernels` (BENCH_SWIFT_GATES=1 keeps them in Swift, to compare).
    static let useC = getenv("BENCH_SWIFT_GATES") == nil

    /// One LSTM step's elementwise part for `rows` rows of `n` units, from the pre-activations `z`
    /// ([rows, 4n], gate order i, j, f, o, without the bias) and `bias` [4n]:
    /// c = σ(f + b_f + forgetBias)·cPrev + σ(i + b_i)·tanh(j + b_j), h = σ(o + b_o)·tanh(c).
    /// Saves σ(i), tanh(j), σ(f), σ(o), tanh(c) per row ([rows, 5n]) for the backward pass; writes c
    /// ([rows, n]) and h to `h` (row stride `hStride`) and, if given, to `h2` as well.
    static func gatesForward(
        rows: Int, units n: Int, z: CPtr, bias: CPtr, forgetBias: Float, cPrev: CPtr, saved: Ptr, c: Ptr,
        h: Ptr, hStride: Int, h2: Ptr?, h2Stride: Int
    ) {
        if useC {
            ck_lstm_gates_forward(rows, n, z, bias, forgetBias, cPrev, saved, c, h, hStride, h2, h2Stride)
            return
        }
        let fb = SIMD8<Float>(repeating: forgetBias)
        for r in 0..<rows {
            let zr = z + r * 4 * n
            let s = saved + r * 5 * n
            let cr = c + r * n
            let cp = cPrev + r * n
            let hr = h + r * hStride
            var k = 0
            while k < n {
                let lanes = min(8, n - k)
                let i = FastMath.sigmoid(FastMath.load(zr + k, lanes) + FastMath.load(bias + k, lanes))
                let j = FastMath.tanh(FastMath.load(zr + n + k, lanes) + FastMath.load(bias + n + k, lanes))
                let f = FastMath.sigmoid(
                    FastMath.load(zr + 2 * n + k, lanes) + FastMath.load(bias + 2 * n + k, lanes) + fb)
                let o = FastMath.sigmoid(FastMath.load(zr + 3 * n + k, lanes) + FastMath.load(bias + 3 * n + k, lanes))
                let cNew = f * FastMath.load(cp + k, lanes) + i * j
                let tc = FastMath.tanh(cNew)
                let hNew = o * tc
                FastMath.store(i, s + k, lanes)
                FastMath.store(j, s + n + k, lanes)
                FastMath.store(f, s + 2 * n + k, lanes)
                FastMath.store(o, s + 3 * n + k, lanes)
                FastMath.store(tc, s + 4 * n + k, lanes)
                FastMath.store(cNew, cr + k, lanes)
                FastMath.store(hNew, hr + k, lanes)
                if let h2 { FastMath.store(hNew, h2 + r * h2Stride + k, lanes) }
                k += 8
            }
        }
    }

    /// The gradient of `gatesForward`: from d h (`dh`, [rows, n]) and d c (`dc`, [rows, n], which is
    /// overwritten with d cPrev) to d z, written (not added) to `dz` ([rows, 4n]).
    static func gatesBackward(rows: Int, units n: Int, saved: CPtr, cPrev: CPtr, dc: Ptr, dh: CPtr, dz: Ptr) {
        if useC {
            ck_lstm_gates_backward(rows, n, saved, cPrev, dc, dh, dz)
            return
        }
        for r in 0..<rows {
            let s = saved + r * 5 * n
            let dzr = dz + r * 4 * n
            let cp = cPrev + r * n
            let dcr = dc + r * n
            let dhr = dh + r * n
            var k = 0
            while k < n {
                let lanes = min(8, n - k)
                let i = FastMath.load(s + k, lanes)
                let j = FastMath.load(s + n + k, lanes)
                let f = FastMath.load(s + 2 * n + k, lanes)
                let o = FastMath.load(s + 3 * n + k, lanes)
                let tc = FastMath.load(s + 4 * n + k, lanes)
                let dhv = FastMath.load(dhr + k, lanes)
                let dcv = FastMath.load(dcr + k, lanes) + dhv * o * (1 - tc * tc)
                FastMath.store(dcv * j * i * (1 - i), dzr + k, lanes)
                FastMath.store(dcv * i * (1 - j * j), dzr + n + k, lanes)
                FastMath.store(dcv * FastMath.load(cp + k, lanes) * f * (1 - f), dzr + 2 * n + k, lanes)
                FastMath.store(dhv * tc * o * (1 - o), dzr + 3 * n + k, lanes)
                FastMath.store(dcv * f, dcr + k, lanes)
                k += 8
            }
        }
    }

    /// Σ_k a[k]·b[k] over `n` floats.
    @inline(__always)
    static func dot(_ a: CPtr, _ b: CPtr, _ n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var k = 0
        while k + 8 <= n {
            acc += FastMath.load(a + k, 8) * FastMath.load(b + k, 8)
            k += 8
        }
        var sum = acc.sum()
        while k < n {
            sum += a[k] * b[k]
            k += 1
        }
        return sum
    }

    /// y[k] += alpha · x[k] over `n` floats.
    @inline(__always)
    static func axpy(_ alpha: Float, _ x: CPtr, _ y: Ptr, _ n: Int) {
        let a = SIMD8<Float>(repeating: alpha)
        var k = 0
        while k + 8 <= n {
            FastMath.store(FastMath.load(y + k, 8) + a * FastMath.load(x + k, 8), y + k, 8)
            k += 8
        }
        while k < n {
            y[k] += alpha * x[k]
            k += 1
        }
    }

    /// Softmax of `n` floats in place, stably (max subtracted).
    @inline(__always)
    static func softmax(_ x: Ptr, _ n: Int) {
        var m = -Float.infinity
        for k in 0..<n { m = max(m, x[k]) }
        let mv = SIMD8<Float>(repeating: m)
        var sum: Float = 0
        var k = 0
        while k < n {
            let lanes = min(8, n - k)
            var e = FastMath.exp(FastMath.load(x + k, lanes) - mv)
            if lanes < 8 { for l in lanes..<8 { e[l] = 0 } }
            sum += e.sum()
            FastMath.store(e, x + k, lanes)
            k += 8
        }
        let inv = 1 / sum
        for k in 0..<n { x[k] *= inv }
    }

    /// sums[c] += Σ_r x[r, c] for x [rows, n] (a bias gradient).
    static func addColumnSums(_ x: CPtr, rows: Int, n: Int, into sums: Ptr) {
        for r in 0..<rows { axpy(1, x + r * n, sums, n) }
    }
}
