import BLAS
import CKernels

/// The whole attention decoder as one op (Luong et al. 2015, dot scores, input feeding): for t < H,
///
///     c_t, h_t = LSTM([h̃_{t-1}, h_{t-1}], c_{t-1})      one shared kernel [M + N, 4N] and bias [4N]
///     a_t      = softmax(memory · h_t)                    [B, T]
///     ctx_t    = a_tᵀ · memory                            [B, N]
///     h̃_t      = tanh([ctx_t, h_t] · W̃ + b̃)               [B, M]
///     ŷ_t      = h̃_t · w                                  [B, 1]
///
/// from h̃_{-1} = 0 and the encoder's final state. The same arithmetic as the step-by-step graph
/// (`Seq2Seq` still builds that one when weights differ between steps), laid out so each shared
/// weight's gradient is one sgemm over all steps (K = H·B): the rows [h̃_{t-1}, h_{t-1}] of every step
/// sit in one [H + 1, B, M + N] buffer (h̃_t is written straight into step t + 1's rows), [ctx_t, h_t]
/// in one [H, B, 2N] buffer, and the gate and pre-activation gradients likewise. The memory's gradient
/// from every step is gathered in one pass at the end.
///
/// Inputs: the encoder's `LSTMSequenceOp` node (memory, final c, final h), kernel, bias, W̃, b̃, w.
/// Output, one buffer: predictions [B, H], then the attention weights [H, B, T].
final class AttentionDecoderOp: Op {
    let b: Int, t: Int, n: Int, m: Int, h: Int
    let forgetBias: Float
    /// M + N: the width of a step's LSTM input row.
    let w: Int
    let xh: UnsafeMutablePointer<Float>  // [H + 1, B, W]: [h̃_{t-1}, h_{t-1}]; h̃_t = xh[t + 1][:, 0..<M]
    let saved: UnsafeMutablePointer<Float>  // [H, B, 5N]
    let cells: UnsafeMutablePointer<Float>  // [H + 1, B, N]
    let z: UnsafeMutablePointer<Float>  // [B, 4N]
    let ch: UnsafeMutablePointer<Float>  // [H, B, 2N]: [ctx_t, h_t]
    let dz: UnsafeMutablePointer<Float>  // [H, B, 4N]
    let dpre: UnsafeMutablePointer<Float>  // [H, B, M]
    let dch: UnsafeMutablePointer<Float>  // [H, B, 2N]
    let ds: UnsafeMutablePointer<Float>  // [H, B, T]: d scores
    let dxh: UnsafeMutablePointer<Float>  // [B, W]: d of step t + 1's input rows
    let dh: UnsafeMutablePointer<Float>  // [B, N]
    let dc: UnsafeMutablePointer<Float>  // [B, N]
    let dp: UnsafeMutablePointer<Float>  // [H, B]: d predictions by step
    private var buffers: [UnsafeMutablePointer<Float>] = []

    init(batch: Int, window: Int, units: Int, attentional: Int, horizon: Int, forgetBias: Float) {
        (b, t, n, m, h, w) = (batch, window, units, attentional, horizon, attentional + units)
        self.forgetBias = forgetBias
        func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
            p.initialize(repeating: 0, count: count)
            return p
        }
        xh = buffer((horizon + 1) * batch * w)
        saved = buffer(horizon * batch * 5 * units)
        cells = buffer((horizon + 1) * batch * units)
        z = buffer(batch * 4 * units)
        ch = buffer(horizon * batch * 2 * units)
        dz = buffer(horizon * batch * 4 * units)
        dpre = buffer(horizon * batch * attentional)
        dch = buffer(horizon * batch * 2 * units)
        ds = buffer(horizon * batch * window)
        dxh = buffer(batch * w)
        dh = buffer(batch * units)
        dc = buffer(batch * units)
        dp = buffer(horizon * batch)
        buffers = [xh, saved, cells, z, ch, dz, dpre, dch, ds, dxh, dh, dc, dp]
    }

    deinit { for p in buffers { p.deallocate() } }

    func forward(_ inputs: [Node], _ out: Node) {
        let (b, t, n, m, h, w) = (self.b, self.t, self.n, self.m, self.h, self.w)
        let memory = inputs[0].value.baseAddress!
        let encoderC = memory + b * t * n
        let encoderH = encoderC + b * n
        let kernel = inputs[1].value.baseAddress!
        let bias = inputs[2].value.baseAddress!
        let wTilde = inputs[3].value.baseAddress!
        let bTilde = inputs[4].value.baseAddress!
        let wTarget = inputs[5].value.baseAddress!
        let predictions = out.value.baseAddress!
        let attention = predictions + b * h
        cells.update(from: encoderC, count: b * n)
        for r in 0..<b { (xh + r * w + m).update(from: encoderH + r * n, count: n) }
        for s in 0..<h {
            let rows = xh + s * b * w
            let next = rows + b * w
            let chs = ch + s * b * 2 * n
            BLAS.sgemm(
                .none, .none, m: b, n: 4 * n, k: w, a: rows, lda: w, b: kernel, ldb: 4 * n, beta: 0, c: z, ldc: 4 * n)
            // h_t goes to [ctx_t, h_t] and, for the next step, beside h̃_t.
            SequenceKernels.gatesForward(
                rows: b, units: n, z: z, bias: bias, forgetBias: forgetBias, cPrev: cells + s * b * n,
                saved: saved + s * b * 5 * n, c: cells + (s + 1) * b * n, h: chs + n, hStride: 2 * n,
                h2: next + m, h2Stride: w)
            ck_attention_forward(b, t, n, memory, chs + n, 2 * n, attention + s * b * t, chs, 2 * n)
            // h̃_t = tanh([ctx_t, h_t] · W̃ + b̃), written into step t + 1's input rows.
            for r in 0..<b { (next + r * w).update(from: bTilde, count: m) }
            BLAS.sgemm(
                .none, .none, m: b, n: m, k: 2 * n, a: chs, lda: 2 * n, b: wTilde, ldb: m, beta: 1, c: next, ldc: w)
            for r in 0..<b {
                let row = next + r * w
                FastMath.map(row, row, m, FastMath.tanh)
                predictions[r * h + s] = SequenceKernels.dot(row, wTarget, m)
            }
        }
    }

    func backward(_ inputs: [Node], _ out: Node) {
        let (b, t, n, m, h, w) = (self.b, self.t, self.n, self.m, self.h, self.w)
        let encoder = inputs[0]
        let memory = encoder.value.baseAddress!
        let dmemory = encoder.grad.baseAddress!
        let dEncoderC = dmemory + b * t * n
        let dEncoderH = dEncoderC + b * n
        let (kNode, biasNode, wTildeNode, bTildeNode, wTargetNode) = (
            inputs[1], inputs[2], inputs[3], inputs[4], inputs[5]
        )
        let kernel = kNode.value.baseAddress!
        let wTilde = wTildeNode.value.baseAddress!
        let wTarget = wTargetNode.value.baseAddress!
        let dPredictions = out.grad.baseAddress!
        let dAttention = dPredictions + b * h
        let attention = out.value.baseAddress! + b * h
        for s in 0..<h { for r in 0..<b { dp[s * b + r] = dPredictions[r * h + s] } }
        dxh.update(repeating: 0, count: b * w)
        dc.update(repeating: 0, count: b * n)
        for s in stride(from: h - 1, through: 0, by: -1) {
            let next = xh + (s + 1) * b * w
            let dpres = dpre + s * b * m
            let dchs = dch + s * b * 2 * n
            // d h̃_t = dŷ_t · wᵀ + (input feeding) d of step t + 1's input; through tanh to d pre.
            for r in 0..<b {
                let g = dp[s * b + r]
                let ht = next + r * w
                let dIn = dxh + r * w
                let dst = dpres + r * m
                for k in 0..<m {
                    let y = ht[k]
                    dst[k] = (g * wTarget[k] + dIn[k]) * (1 - y * y)
                }
            }
            // d[ctx_t, h_t] = d pre · W̃ᵀ.
            BLAS.sgemm(
                .none, .transpose, m: b, n: 2 * n, k: m, a: dpres, lda: m, b: wTilde, ldb: m, beta: 0, c: dchs,
                ldc: 2 * n)
            // Attention: d a = memory · d ctx (+ the output's own gradient); d scores through the softmax;
            // d h_t = (d[ctx, h])_h + memoryᵀ · d scores + the recurrent part from step t + 1.
            ck_attention_backward(
                b, t, n, memory, attention + s * b * t, dAttention + s * b * t, dchs, 2 * n, dchs + n, 2 * n,
                dxh + m, w, ds + s * b * t, dh)
            let dzs = dz + s * b * 4 * n
            SequenceKernels.gatesBackward(
                rows: b, units: n, saved: saved + s * b * 5 * n, cPrev: cells + s * b * n, dc: dc, dh: dh, dz: dzs)
            // d[h̃_{t-1}, h_{t-1}] = dZ_t · kernelᵀ; at t = 0 only h_{-1} (the encoder's) needs it.
            if s > 0 {
                BLAS.sgemm(
                    .none, .transpose, m: b, n: w, k: 4 * n, a: dzs, lda: 4 * n, b: kernel, ldb: 4 * n, beta: 0,
                    c: dxh, ldc: w)
            } else {
                BLAS.sgemm(
                    .none, .transpose, m: b, n: n, k: 4 * n, a: dzs, lda: 4 * n, b: kernel + m * 4 * n, ldb: 4 * n,
                    beta: 0, c: dxh + m, ldc: w)
            }
        }
        // Into the encoder: its final state, and the memory from every step in one pass,
        // d memory[r, k] = Σ_t a_t[r, k]·d ctx_t[r] + d scores_t[r, k]·h_t[r].
        for r in 0..<b {
            SequenceKernels.axpy(1, dxh + r * w + m, dEncoderH + r * n, n)
            SequenceKernels.axpy(1, dc + r * n, dEncoderC + r * n, n)
        }
        ck_memory_gradient(b, t, n, h, attention, ds, dch, ch + n, 2 * n, dmemory)
        // Every shared weight's gradient, summed over all steps in one product each (K = H·B).
        BLAS.sgemm(
            .transpose, .none, m: w, n: 4 * n, k: h * b, a: xh, lda: w, b: dz, ldb: 4 * n, beta: 1,
            c: kNode.grad.baseAddress!, ldc: 4 * n)
        SequenceKernels.addColumnSums(dz, rows: h * b, n: 4 * n, into: biasNode.grad.baseAddress!)
        BLAS.sgemm(
            .transpose, .none, m: 2 * n, n: m, k: h * b, a: ch, lda: 2 * n, b: dpre, ldb: m, beta: 1,
            c: wTildeNode.grad.baseAddress!, ldc: m)
        SequenceKernels.addColumnSums(dpre, rows: h * b, n: m, into: bTildeNode.grad.baseAddress!)
        // d w = Σ_t h̃_tᵀ · dŷ_t: h̃_t are the first M columns of rows 1...H of `xh`.
        BLAS.sgemv(
            .transpose, m: h * b, n: m, a: xh + b * w, lda: w, x: dp, beta: 1, y: wTargetNode.grad.baseAddress!)
    }
}

/// The decoder's outputs, as views of one `AttentionDecoderOp` node.
public struct AttentionDecoderOutput {
    /// [B, H].
    public let predictions: Node
    /// Step t's attention weights, [B, T].
    public let attention: [Node]
    /// The op's node, which owns both.
    let node: Node
}

extension Tape {
    /// The whole attention decoder over `horizon` steps from `encoder`'s memory and final state, with one
    /// LSTM `kernel` [M + N, 4N] and `bias` [4N], `wTilde` [2N, M], `bTilde` (M values) and `wTarget`
    /// [M, 1] shared by every step: the values of the step-by-step graph in one op.
    public func attentionDecoder(
        _ encoder: LSTMSequenceOutput, horizon: Int, kernel: Node, bias: Node, wTilde: Node, bTilde: Node,
        wTarget: Node, forgetBias: Float
    ) -> AttentionDecoderOutput {
        let (b, t, n) = (encoder.memory.shape[0], encoder.memory.shape[1], encoder.memory.shape[2])
        let m = wTilde.shape[1]
        precondition(
            kernel.shape == [m + n, 4 * n] && bias.count == 4 * n && wTilde.shape == [2 * n, m]
                && bTilde.count == m && wTarget.shape == [m, 1] && horizon > 0,
            "attention decoder weights \(kernel.shape), \(bias.shape), \(wTilde.shape), \(bTilde.shape), "
                + "\(wTarget.shape) for memory \(encoder.memory.shape)")
        let node = apply(
            AttentionDecoderOp(
                batch: b, window: t, units: n, attentional: m, horizon: horizon, forgetBias: forgetBias),
            [encoder.node, kernel, bias, wTilde, bTilde, wTarget], shape: [b * horizon + horizon * b * t])
        return AttentionDecoderOutput(
            predictions: Node(viewOf: node, offset: 0, shape: [b, horizon]),
            attention: (0..<horizon).map { Node(viewOf: node, offset: b * horizon + $0 * b * t, shape: [b, t]) },
            node: node)
    }
}
