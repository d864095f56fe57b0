/// The elementwise part of an LSTM step, fused: from the pre-activations z = [i | j | f | o] ([B, 4N])
/// and the previous memory c ([B, N]) to [c' | h'] ([B, 2N]) with
/// c' = σ(f + forgetBias)·c + σ(i)·tanh(j), h' = σ(o)·tanh(c').
///
/// One pass instead of a dozen ops; the gate activations are kept for the backward pass, which is the
/// textbook LSTM derivative (the finite-difference test checks it like every other op).
final class LSTMGatesOp: Op {
    let forgetBias: Float
    let units: Int
    /// σ(i), tanh(j), σ(f + b), σ(o), tanh(c') per row: [B, 5N].
    let saved: UnsafeMutablePointer<Float>
    let rows: Int

    init(rows: Int, units: Int, forgetBias: Float) {
        self.rows = rows
        self.units = units
        self.forgetBias = forgetBias
        saved = .allocate(capacity: rows * 5 * units)
        saved.initialize(repeating: 0, count: rows * 5 * units)
    }

    deinit { saved.deallocate() }

    func forward(_ inputs: [Node], _ out: Node) {
        let n = units
        let z = inputs[0].value.baseAddress!
        let cPrev = inputs[1].value.baseAddress!
        let o = out.value.baseAddress!
        let bias = SIMD8<Float>(repeating: forgetBias)
        for r in 0..<rows {
            let zr = z + r * 4 * n
            let s = saved + r * 5 * n
            let c = o + r * 2 * n
            let h = c + n
            let cp = cPrev + r * n
            // Eight units at a time: all four gates, the new memory and output in one pass.
            var k = 0
            while k < n {
                let lanes = min(8, n - k)
                let i = FastMath.sigmoid(FastMath.load(zr + k, lanes))
                let j = FastMath.tanh(FastMath.load(zr + n + k, lanes))
                let f = FastMath.sigmoid(FastMath.load(zr + 2 * n + k, lanes) + bias)
                let og = FastMath.sigmoid(FastMath.load(zr + 3 * n + k, lanes))
                let cNew = f * FastMath.load(cp + k, lanes) + i * j
                let tc = FastMath.tanh(cNew)
                FastMath.store(i, s + k, lanes)
                FastMath.store(j, s + n + k, lanes)
                FastMath.store(f, s + 2 * n + k, lanes)
                FastMath.store(og, s + 3 * n + k, lanes)
                FastMath.store(tc, s + 4 * n + k, lanes)
                FastMath.store(cNew, c + k, lanes)
                FastMath.store(og * tc, h + k, lanes)
                k += 8
            }
        }
    }

    func backward(_ inputs: [Node], _ out: Node) {
        let n = units
        let dz = inputs[0].grad.baseAddress!
        let cPrev = inputs[1].value.baseAddress!
        let dcPrev = inputs[1].grad.baseAddress!
        let g = out.grad.baseAddress!
        for r in 0..<rows {
            let s = saved + r * 5 * n
            let dzr = dz + r * 4 * n
            let cp = cPrev + r * n
            let dcp = dcPrev + r * n
            let dcOut = g + r * 2 * n
            let dh = dcOut + n
            for k in 0..<n {
                let (i, j, f, o, tc) = (s[k], s[n + k], s[2 * n + k], s[3 * n + k], s[4 * n + k])
                let dc = dcOut[k] + dh[k] * o * (1 - tc * tc)
                dzr[k] += dc * j * i * (1 - i)
                dzr[n + k] += dc * i * (1 - j * j)
                dzr[2 * n + k] += dc * cp[k] * f * (1 - f)
                dzr[3 * n + k] += dh[k] * tc * o * (1 - o)
                dcp[k] += dc * f
            }
        }
    }
}

extension Tape {
    /// The fused LSTM gates: z [B, 4N] (gate order i, j, f, o) and c [B, N] to [c' | h'] ([B, 2N]).
    public func lstmGates(_ z: Node, _ c: Node, forgetBias: Float) -> Node {
        let (b, n) = (c.shape[0], c.shape[1])
        precondition(z.shape == [b, 4 * n], "LSTM gates of z \(z.shape) and c \(c.shape)")
        return apply(LSTMGatesOp(rows: b, units: n, forgetBias: forgetBias), [z, c], shape: [b, 2 * n])
    }
}
