import BLAS

/// A whole LSTM layer over a window, as one op: `x` [B, T, D], one shared `kernel` [D + N, 4N] and
/// `bias` [4N], zero initial state; the same arithmetic as T steps of concat → affine → gates, with
/// TF1's gate order (i, j, f, o) and forget bias.
///
/// Laid out for few passes and few BLAS calls: every step's [x_t, h_{t-1}] row block lives in one
/// [T, B, D + N] buffer (the gates write h straight into the next step's block), so the kernel's
/// gradient is one sgemm, Xᵀ·dZ with K = T·B, instead of T small ones; the bias is added inside the
/// gates; no concatenation, slicing or stacking copies; the gradients of the gates are written, not
/// accumulated, so nothing is zeroed.
///
/// Output, one buffer: the outputs h_t as memory [B, T, N], then the final c [B, N], then the final
/// h [B, N] (the decoder's initial state); `Tape.lstmSequence` returns views of the three.
final class LSTMSequenceOp: Op {
    let b: Int, t: Int, d: Int, n: Int
    let forgetBias: Float
    /// D + N: the width of a step's input row [x_t, h_{t-1}].
    let w: Int
    let xh: UnsafeMutablePointer<Float>  // [T, B, W]
    let saved: UnsafeMutablePointer<Float>  // [T, B, 5N]
    let cells: UnsafeMutablePointer<Float>  // [T + 1, B, N]; cells[0] = 0
    let z: UnsafeMutablePointer<Float>  // [B, 4N]
    let dz: UnsafeMutablePointer<Float>  // [T, B, 4N]
    let dxh: UnsafeMutablePointer<Float>  // [B, W]
    let dh: UnsafeMutablePointer<Float>  // [B, N]
    let dc: UnsafeMutablePointer<Float>  // [B, N]
    private var buffers: [UnsafeMutablePointer<Float>] = []

    init(batch: Int, steps: Int, inputSize: Int, units: Int, forgetBias: Float) {
        (b, t, d, n, w) = (batch, steps, inputSize, units, inputSize + units)
        self.forgetBias = forgetBias
        func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
            p.initialize(repeating: 0, count: count)
            return p
        }
        xh = buffer(steps * batch * w)
        saved = buffer(steps * batch * 5 * units)
        cells = buffer((steps + 1) * batch * units)
        z = buffer(batch * 4 * units)
        dz = buffer(steps * batch * 4 * units)
        dxh = buffer(batch * w)
        dh = buffer(batch * units)
        dc = buffer(batch * units)
        buffers = [xh, saved, cells, z, dz, dxh, dh, dc]
    }

    deinit { for p in buffers { p.deallocate() } }

    func forward(_ inputs: [Node], _ out: Node) {
        let (b, t, d, n, w) = (self.b, self.t, self.d, self.n, self.w)
        let x = inputs[0].value.baseAddress!
        let kernel = inputs[1].value.baseAddress!
        let bias = inputs[2].value.baseAddress!
        let memory = out.value.baseAddress!
        let finalC = memory + b * t * n
        let finalH = finalC + b * n
        // x_t into the first D columns of every step's rows; the h columns of step 0 stay zero.
        for s in 0..<t {
            for r in 0..<b {
                (xh + (s * b + r) * w).update(from: x + (r * t + s) * d, count: d)
            }
        }
        for s in 0..<t {
            BLAS.sgemm(
                .none, .none, m: b, n: 4 * n, k: w, a: xh + s * b * w, lda: w, b: kernel, ldb: 4 * n, beta: 0,
                c: z, ldc: 4 * n)
            let last = s == t - 1
            SequenceKernels.gatesForward(
                rows: b, units: n, z: z, bias: bias, forgetBias: forgetBias, cPrev: cells + s * b * n,
                saved: saved + s * b * 5 * n, c: cells + (s + 1) * b * n, h: memory + s * n, hStride: t * n,
                h2: last ? finalH : xh + (s + 1) * b * w + d, h2Stride: last ? n : w)
        }
        finalC.update(from: cells + t * b * n, count: b * n)
    }

    func backward(_ inputs: [Node], _ out: Node) {
        let (b, t, d, n, w) = (self.b, self.t, self.d, self.n, self.w)
        let (xNode, kNode, biasNode) = (inputs[0], inputs[1], inputs[2])
        let kernel = kNode.value.baseAddress!
        let dmemory = out.grad.baseAddress!
        let dFinalC = dmemory + b * t * n
        let dFinalH = dFinalC + b * n
        let dx = xNode.grad.baseAddress!
        dc.update(from: dFinalC, count: b * n)
        for r in 0..<b {
            for k in 0..<n { dh[r * n + k] = dFinalH[r * n + k] + dmemory[(r * t + t - 1) * n + k] }
        }
        for s in stride(from: t - 1, through: 0, by: -1) {
            let dzs = dz + s * b * 4 * n
            SequenceKernels.gatesBackward(
                rows: b, units: n, saved: saved + s * b * 5 * n, cPrev: cells + s * b * n, dc: dc, dh: dh, dz: dzs)
            // d[x_t, h_{t-1}] = dZ_t · kernelᵀ; at t = 0 only the x columns matter (h_{-1} is a constant).
            BLAS.sgemm(
                .none, .transpose, m: b, n: s > 0 ? w : d, k: 4 * n, a: dzs, lda: 4 * n, b: kernel, ldb: 4 * n,
                beta: 0, c: dxh, ldc: w)
            for r in 0..<b {
                for k in 0..<d { dx[(r * t + s) * d + k] += dxh[r * w + k] }
            }
            if s > 0 {
                for r in 0..<b {
                    let src = dxh + r * w + d
                    let mem = dmemory + (r * t + s - 1) * n
                    let dst = dh + r * n
                    for k in 0..<n { dst[k] = src[k] + mem[k] }
                }
            }
        }
        // The shared kernel's gradient, summed over every step at once: [x_t, h_{t-1}]ᵀ · dZ_t, K = T·B.
        BLAS.sgemm(
            .transpose, .none, m: w, n: 4 * n, k: t * b, a: xh, lda: w, b: dz, ldb: 4 * n, beta: 1,
            c: kNode.grad.baseAddress!, ldc: 4 * n)
        SequenceKernels.addColumnSums(dz, rows: t * b, n: 4 * n, into: biasNode.grad.baseAddress!)
    }
}

/// An LSTM layer's outputs over a window, as views of one `LSTMSequenceOp` node.
public struct LSTMSequenceOutput {
    /// Every step's h: [B, T, N].
    public let memory: Node
    /// The final memory and output, [B, N] each.
    public let c: Node
    public let h: Node
    /// The op's node, which owns the three buffers.
    let node: Node
}

extension Tape {
    /// A whole LSTM layer over `x` [B, T, D] from a zero state, with one `kernel` [D + N, 4N] and `bias`
    /// [4N] at every step: the same values as T `lstmGates` steps, in one op.
    public func lstmSequence(_ x: Node, kernel: Node, bias: Node, forgetBias: Float) -> LSTMSequenceOutput {
        precondition(x.shape.count == 3, "LSTM sequence over \(x.shape)")
        let (b, t, d) = (x.shape[0], x.shape[1], x.shape[2])
        let n = kernel.shape[1] / 4
        precondition(
            kernel.shape == [d + n, 4 * n] && bias.count == 4 * n,
            "LSTM sequence kernel \(kernel.shape) and bias \(bias.shape) for input \(x.shape)")
        let node = apply(
            LSTMSequenceOp(batch: b, steps: t, inputSize: d, units: n, forgetBias: forgetBias), [x, kernel, bias],
            shape: [b * t * n + 2 * b * n])
        return LSTMSequenceOutput(
            memory: Node(viewOf: node, offset: 0, shape: [b, t, n]),
            c: Node(viewOf: node, offset: b * t * n, shape: [b, n]),
            h: Node(viewOf: node, offset: b * t * n + b * n, shape: [b, n]), node: node)
    }
}
