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
        let z = inputs[0].value.baseAddress!, cPrev = inputs[1].value.baseAddress!, o = out.value.baseAddress!
        for r in 0..<rows {
            let zr = z + r * 4 * n, s = saved + r * 5 * n
            FastMath.map(zr, s, n, FastMath.sigmoid)
            FastMath.map(zr + n, s + n, n, FastMath.tanh)
            let b = forgetBias
            FastMath.map(zr + 2 * n, s + 2 * n, n) { FastMath.sigmoid($0 + b) }
            FastMath.map(zr + 3 * n, s + 3 * n, n, FastMath.sigmoid)
            let c = o + r * 2 * n, h = c + n, cp = cPrev + r * n
            for k in 0..<n { c[k] = s[2 * n + k] * cp[k] + s[k] * s[n + k] }
            FastMath.map(c, s + 4 * n, n, FastMath.tanh)
            for k in 0..<n { h[k] = s[3 * n + k] * s[4 * n + k] }
        }
    }

    func backward(_ inputs: [Node], _ out: Node) {
        let n = units
        let dz = inputs[0].grad.baseAddress!, cPrev = inputs[1].value.baseAddress!, dcPrev = inputs[1].grad.baseAddress!
        let g = out.grad.baseAddress!
        for r in 0..<rows {
            let s = saved + r * 5 * n, dzr = dz + r * 4 * n, cp = cPrev + r * n, dcp = dcPrev + r * n
            let dcOut = g + r * 2 * n, dh = dcOut + n
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
