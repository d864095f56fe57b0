import Foundation

/// Luong et al. 2015 "dot" scores: scores[b, s] = Σ_k memory[b, s, k] · h[b, k], for memory [B, T, N], h [B, N].
final class BatchDotOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        let (mem, h) = (i[0], i[1])
        let (b, t, n) = (mem.shape[0], mem.shape[1], mem.shape[2])
        for r in 0..<b {
            for s in 0..<t {
                var acc: Float = 0
                let base = (r * t + s) * n
                for k in 0..<n { acc += mem.value[base + k] * h.value[r * n + k] }
                out.value[r * t + s] = acc
            }
        }
    }

    func backward(_ i: [Node], _ out: Node) {
        let (mem, h) = (i[0], i[1])
        let (b, t, n) = (mem.shape[0], mem.shape[1], mem.shape[2])
        for r in 0..<b {
            for s in 0..<t {
                let g = out.grad[r * t + s]
                let base = (r * t + s) * n
                for k in 0..<n {
                    mem.grad[base + k] += g * h.value[r * n + k]
                    h.grad[r * n + k] += g * mem.value[base + k]
                }
            }
        }
    }
}

/// Softmax over the last axis of a 2-D node, computed stably (max subtracted).
final class SoftmaxRowsOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        let x = i[0], n = x.cols
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
        let x = i[0], n = x.cols
        for r in 0..<x.rows {
            let base = r * n
            var dot: Float = 0
            for c in 0..<n { dot += out.grad[base + c] * out.value[base + c] }
            for c in 0..<n { x.grad[base + c] += out.value[base + c] * (out.grad[base + c] - dot) }
        }
    }
}

/// The context vector: ctx[b, k] = Σ_s a[b, s] · memory[b, s, k], for a [B, T], memory [B, T, N].
final class WeightedSumOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        let (a, mem) = (i[0], i[1])
        let (b, t, n) = (mem.shape[0], mem.shape[1], mem.shape[2])
        out.value.update(repeating: 0)
        for r in 0..<b {
            for s in 0..<t {
                let w = a.value[r * t + s]
                let base = (r * t + s) * n
                for k in 0..<n { out.value[r * n + k] += w * mem.value[base + k] }
            }
        }
    }

    func backward(_ i: [Node], _ out: Node) {
        let (a, mem) = (i[0], i[1])
        let (b, t, n) = (mem.shape[0], mem.shape[1], mem.shape[2])
        for r in 0..<b {
            for s in 0..<t {
                let w = a.value[r * t + s]
                let base = (r * t + s) * n
                var ga: Float = 0
                for k in 0..<n {
                    let g = out.grad[r * n + k]
                    ga += g * mem.value[base + k]
                    mem.grad[base + k] += w * g
                }
                a.grad[r * t + s] += ga
            }
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
        precondition(memory.shape.count == 3 && h.shape == [memory.shape[0], memory.shape[2]],
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
        precondition(memory.shape.count == 3 && a.shape == [memory.shape[0], memory.shape[1]],
                     "context of weights \(a.shape) and memory \(memory.shape)")
        return apply(WeightedSumOp(), [a, memory], shape: [memory.shape[0], memory.shape[2]])
    }

    /// Mean squared error between `prediction` and `target` of equal shapes: a [1] node.
    public func meanSquaredError(_ prediction: Node, _ target: Node) -> Node {
        precondition(prediction.shape == target.shape, "MSE of \(prediction.shape) and \(target.shape)")
        return apply(MeanSquaredErrorOp(), [prediction, target], shape: [1])
    }
}
