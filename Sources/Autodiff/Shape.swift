/// Concatenation of 2-D nodes along axis 1 (columns), as `tf.concat([..], axis=1)`.
final class ConcatColumnsOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        let rows = out.rows
        let width = out.cols
        var offset = 0
        for x in i {
            let w = x.cols
            for r in 0..<rows {
                (out.value.baseAddress! + r * width + offset).update(from: x.value.baseAddress! + r * w, count: w)
            }
            offset += w
        }
    }

    func backward(_ i: [Node], _ out: Node) {
        let rows = out.rows
        let width = out.cols
        var offset = 0
        for x in i {
            let w = x.cols
            for r in 0..<rows {
                for c in 0..<w { x.grad[r * w + c] += out.grad[r * width + offset + c] }
            }
            offset += w
        }
    }
}

/// Columns `start ..< start + width` of a 2-D node (one piece of `tf.split(z, 4, axis=1)`).
final class SliceColumnsOp: Op {
    let start: Int
    init(start: Int) { self.start = start }

    func forward(_ i: [Node], _ out: Node) {
        let x = i[0]
        let w = out.cols
        let src = x.cols
        for r in 0..<out.rows {
            (out.value.baseAddress! + r * w).update(from: x.value.baseAddress! + r * src + start, count: w)
        }
    }

    func backward(_ i: [Node], _ out: Node) {
        let x = i[0]
        let w = out.cols
        let src = x.cols
        for r in 0..<out.rows {
            for c in 0..<w { x.grad[r * src + start + c] += out.grad[r * w + c] }
        }
    }
}

/// Stacks T nodes [B, N] into [B, T, N] (`tf.stack(outputs, axis=1)`).
final class StackStepsOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        let steps = i.count
        let b = out.shape[0]
        let n = out.shape[2]
        for (t, x) in i.enumerated() {
            for r in 0..<b {
                (out.value.baseAddress! + (r * steps + t) * n).update(from: x.value.baseAddress! + r * n, count: n)
            }
        }
    }

    func backward(_ i: [Node], _ out: Node) {
        let steps = i.count
        let b = out.shape[0]
        let n = out.shape[2]
        for (t, x) in i.enumerated() {
            for r in 0..<b {
                let base = (r * steps + t) * n
                for c in 0..<n { x.grad[r * n + c] += out.grad[base + c] }
            }
        }
    }
}

/// Step t of a [B, T, D] node, as [B, D] (one element of `tf.unstack(x, axis=1)`).
final class SelectStepOp: Op {
    let t: Int
    init(_ t: Int) { self.t = t }

    func forward(_ i: [Node], _ out: Node) {
        let x = i[0]
        let steps = x.shape[1]
        let d = x.shape[2]
        for r in 0..<x.shape[0] {
            (out.value.baseAddress! + r * d).update(from: x.value.baseAddress! + (r * steps + t) * d, count: d)
        }
    }

    func backward(_ i: [Node], _ out: Node) {
        let x = i[0]
        let steps = x.shape[1]
        let d = x.shape[2]
        for r in 0..<x.shape[0] {
            for c in 0..<d { x.grad[(r * steps + t) * d + c] += out.grad[r * d + c] }
        }
    }
}

extension Tape {
    /// Concatenates 2-D nodes with equal row counts along the columns.
    public func concatColumns(_ xs: [Node]) -> Node {
        let rows = xs[0].shape[0]
        precondition(xs.allSatisfy { $0.shape.count == 2 && $0.shape[0] == rows }, "concat of \(xs.map(\.shape))")
        return apply(ConcatColumnsOp(), xs, shape: [rows, xs.map { $0.shape[1] }.reduce(0, +)])
    }

    /// Splits a 2-D node into `parts` equal column blocks.
    public func splitColumns(_ x: Node, parts: Int) -> [Node] {
        precondition(x.shape.count == 2 && x.shape[1] % parts == 0, "split of \(x.shape) into \(parts)")
        let w = x.shape[1] / parts
        return (0..<parts).map { apply(SliceColumnsOp(start: $0 * w), [x], shape: [x.shape[0], w]) }
    }

    /// Columns `start ..< start + width` of a 2-D node.
    public func sliceColumns(_ x: Node, start: Int, width: Int) -> Node {
        precondition(x.shape.count == 2 && start + width <= x.shape[1], "slice of \(x.shape)")
        return apply(SliceColumnsOp(start: start), [x], shape: [x.shape[0], width])
    }

    /// Stacks [B, N] nodes into [B, T, N].
    public func stackSteps(_ xs: [Node]) -> Node {
        let s = xs[0].shape
        precondition(s.count == 2 && xs.allSatisfy { $0.shape == s }, "stack of \(xs.map(\.shape))")
        return apply(StackStepsOp(), xs, shape: [s[0], xs.count, s[1]])
    }

    /// Step `t` of a [B, T, D] node as [B, D].
    public func selectStep(_ x: Node, _ t: Int) -> Node {
        precondition(x.shape.count == 3 && t < x.shape[1], "step \(t) of \(x.shape)")
        return apply(SelectStepOp(t), [x], shape: [x.shape[0], x.shape[2]])
    }
}
