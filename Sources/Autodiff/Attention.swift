import BLAS
import Foundation

/// Luong et al. 2015 "dot" scores: scores[b, s] = Σ_k memory[b, s, k] · h[b, k], for memory [B, T, N], h [B, N].
/// One matrix-vector product per example, through BLAS.
final class BatchDotOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        let (mem, h) = (i[0], i[1])
        let (b, t, n) = (mem.shape[0], mem.shape[1], mem.shape[2])
        let m = mem.value.baseAddress!
        let hv = h.value.baseAddress!
        let o = out.value.baseAddress!
        for r in 0..<b {
            BLAS.sgemv(.none, m: t, n: n, a: m + r * t * n, lda: n, x: hv + r * n, y: o + r * t)
        }
    }

    func backward(_ i: [Node], _ out: Node) {
        let (mem, h) = (i[0], i[1])
        let (b, t, n) = (mem.shape[0], mem.shape[1], mem.shape[2])
        let m = mem.value.baseAddress!
        let dm = mem.grad.baseAddress!
        let hv = h.value.baseAddress!
        let dh = h.grad.baseAddress!
        let g = out.grad.baseAddress!
        for r in 0..<b {
            // d memory[b] += d scores[b] ⊗ h[b];  d h[b] += memory[b]ᵀ · d scores[b]
            BLAS.sger(m: t, n: n, x: g + r * t, y: hv + r * n, a: dm + r * t * n, lda: n)
            BLAS.sgemv(.transpose, m: t, n: n, a: m + r * t * n, lda: n, x: g + r * t, beta: 1, y: dh + r * n)
        }
    }
}

/// Softmax over the last axis of a 2-D node, computed stably (max subtracted).
final class SoftmaxRowsOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        let x = i[0]
        let n = x.cols
        for r in 0..<x.rows {
            let base = r * n
            var m = -Float.infinity
            for c in 0..<n { m = max(m, x.value[base + c]) }
            var sum: Float = 0
            for c in 0..<n {
                let e = expf(x.value[base + c] - m)
                out.value[base + c] = e
                sum += e
            }
            let inv = 1 / sum
            for c in 0..<n { out.value[base + c] *= inv }
        }
    }

    func backward(_ i: [Node], _ out: Node) {
        // dx = y ⊙ (dy - Σ dy ⊙ y)
        let x = i[0]
        let n = x.cols
        for r in 0..<x.rows {
            let base = r * n
            var dot: Float = 0
            for c in 0..<n { dot += out.grad[base + c] * out.value[base + c] }
            for c in 0..<n { x.grad[base + c] += out.value[base + c] * (out.grad[base + c] - dot) }
        }
    }
}

/// The context vector: ctx[b, k] = Σ_s a[b, s] · memory[b, s, k], for a [B, T], memory [B, T, N].
/// One matrix-vector product per example, through BLAS.
final class WeightedSumOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        let (a, mem) = (i[0], i[1])
        let (b, t, n) = (mem.shape[0], mem.shape[1], mem.shape[2])
        let av = a.value.baseAddress!
        let m = mem.value.baseAddress!
        let o = out.value.baseAddress!
        for r in 0..<b {
            BLAS.sgemv(.transpose, m: t, n: n, a: m + r * t * n, lda: n, x: av + r * t, y: o + r * n)
        }
    }

    func backward(_ i: [Node], _ out: Node) {
        let (a, mem) = (i[0], i[1])
        let (b, t, n) = (mem.shape[0], mem.shape[1], mem.shape[2])
        let av = a.value.baseAddress!
        let da = a.grad.baseAddress!
        let m = mem.value.baseAddress!
        let dm = mem.grad.baseAddress!
        let g = out.grad.baseAddress!
        for r in 0..<b {
            // d a[b] += memory[b] · d ctx[b];  d memory[b] += a[b] ⊗ d ctx[b]
            BLAS.sgemv(.none, m: t, n: n, a: m + r * t * n, lda: n, x: g + r * n, beta: 1, y: da + r * t)
            BLAS.sger(m: t, n: n, x: av + r * t, y: g + r * n, a: dm + r * t * n, lda: n)
        }
    }
}

/// Mean over all entries of (pred - target)², a scalar of shape [1]; both inputs get their gradient.
final class MeanSquaredErrorOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        let (p, y) = (i[0].value, i[1].value)
        var acc: Float = 0
        for k in 0..<p.count {
            let d = p[k] - y[k]
            acc += d * d
        }
        out.value[0] = acc / Float(p.count)
    }

    func backward(_ i: [Node], _ out: Node) {
        let (p, y, gp, gy) = (i[0].value, i[1].value, i[0].grad, i[1].grad)
        let scale = 2 * out.grad[0] / Float(p.count)
        for k in 0..<p.count {
            let d = scale * (p[k] - y[k])
            gp[k] += d
            gy[k] -= d
        }
    }
}

extension Tape {
    /// Dot-product attention scores of `h` [B, N] against `memory` [B, T, N]: [B, T].
    public func batchDot(_ memory: Node, _ h: Node) -> Node {
        precondition(
            memory.shape.count == 3 && h.shape == [memory.shape[0], memory.shape[2]],
            "attention scores of memory \(memory.shape) and state \(h.shape)")
        return apply(BatchDotOp(), [memory, h], shape: [memory.shape[0], memory.shape[1]])
    }

    /// Softmax over the last axis of a 2-D node.
    public func softmaxRows(_ x: Node) -> Node {
        precondition(x.shape.count == 2, "softmax of \(x.shape)")
        return apply(SoftmaxRowsOp(), [x], shape: x.shape)
    }

    /// Attention-weighted sum of `memory` [B, T, N] with weights `a` [B, T]: [B, N].
    public func weightedSum(_ a: Node, _ memory: Node) -> Node {
        precondition(
            memory.shape.count == 3 && a.shape == [memory.shape[0], memory.shape[1]],
            "context of weights \(a.shape) and memory \(memory.shape)")
        return apply(WeightedSumOp(), [a, memory], shape: [memory.shape[0], memory.shape[2]])
    }

    /// Mean squared error between `prediction` and `target` of equal shapes: a [1] node.
    public func meanSquaredError(_ prediction: Node, _ target: Node) -> Node {
        precondition(prediction.shape == target.shape, "MSE of \(prediction.shape) and \(target.shape)")
        return apply(MeanSquaredErrorOp(), [prediction, target], shape: [1])
    }
}
