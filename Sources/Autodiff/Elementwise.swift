import Foundation

/// x + b with b [n] or [1, n] broadcast over the rows of x [m, n].
final class AddRowOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        let (x, b, o) = (i[0].value, i[1].value, out.value)
        let n = b.count
        for r in 0..<(x.count / n) {
            let base = r * n
            for c in 0..<n { o[base + c] = x[base + c] + b[c] }
        }
    }

    func backward(_ i: [Node], _ out: Node) {
        let (gx, gb, g) = (i[0].grad, i[1].grad, out.grad)
        let n = gb.count
        for r in 0..<(g.count / n) {
            let base = r * n
            for c in 0..<n {
                gx[base + c] += g[base + c]
                gb[c] += g[base + c]
            }
        }
    }
}

/// a + b, same shapes.
final class AddOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        let (a, b, o) = (i[0].value, i[1].value, out.value)
        for k in 0..<o.count { o[k] = a[k] + b[k] }
    }

    func backward(_ i: [Node], _ out: Node) {
        let (ga, gb, g) = (i[0].grad, i[1].grad, out.grad)
        for k in 0..<g.count {
            ga[k] += g[k]
            gb[k] += g[k]
        }
    }
}

/// a - b, same shapes.
final class SubOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        let (a, b, o) = (i[0].value, i[1].value, out.value)
        for k in 0..<o.count { o[k] = a[k] - b[k] }
    }

    func backward(_ i: [Node], _ out: Node) {
        let (ga, gb, g) = (i[0].grad, i[1].grad, out.grad)
        for k in 0..<g.count {
            ga[k] += g[k]
            gb[k] -= g[k]
        }
    }
}

/// a ⊙ b, same shapes.
final class MulOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        let (a, b, o) = (i[0].value, i[1].value, out.value)
        for k in 0..<o.count { o[k] = a[k] * b[k] }
    }

    func backward(_ i: [Node], _ out: Node) {
        let (a, b, ga, gb, g) = (i[0].value, i[1].value, i[0].grad, i[1].grad, out.grad)
        for k in 0..<g.count {
            ga[k] += g[k] * b[k]
            gb[k] += g[k] * a[k]
        }
    }
}

/// x + c for a constant c (the LSTM's forget bias).
final class AddScalarOp: Op {
    let c: Float
    init(_ c: Float) { self.c = c }

    func forward(_ i: [Node], _ out: Node) {
        let (x, o) = (i[0].value, out.value)
        for k in 0..<o.count { o[k] = x[k] + c }
    }

    func backward(_ i: [Node], _ out: Node) {
        let (gx, g) = (i[0].grad, out.grad)
        for k in 0..<g.count { gx[k] += g[k] }
    }
}

/// The logistic function; its gradient is y(1 - y).
final class SigmoidOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        FastMath.map(i[0].value.baseAddress!, out.value.baseAddress!, out.count, FastMath.sigmoid)
    }

    func backward(_ i: [Node], _ out: Node) {
        let (gx, y, g) = (i[0].grad, out.value, out.grad)
        for k in 0..<g.count { gx[k] += g[k] * y[k] * (1 - y[k]) }
    }
}

/// tanh; its gradient is 1 - y².
final class TanhOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        FastMath.map(i[0].value.baseAddress!, out.value.baseAddress!, out.count, FastMath.tanh)
    }

    func backward(_ i: [Node], _ out: Node) {
        let (gx, y, g) = (i[0].grad, out.value, out.grad)
        for k in 0..<g.count { gx[k] += g[k] * (1 - y[k] * y[k]) }
    }
}

extension Tape {
    /// `x + b`, with `b` of shape [n] or [1, n] added to every row of `x` [m, n].
    public func addRow(_ x: Node, _ b: Node) -> Node {
        precondition(b.count == x.shape.last!, "bias \(b.shape) does not match rows of \(x.shape)")
        return apply(AddRowOp(), [x, b], shape: x.shape)
    }

    public func add(_ a: Node, _ b: Node) -> Node {
        precondition(a.shape == b.shape, "add of \(a.shape) and \(b.shape)")
        return apply(AddOp(), [a, b], shape: a.shape)
    }

    public func sub(_ a: Node, _ b: Node) -> Node {
        precondition(a.shape == b.shape, "sub of \(a.shape) and \(b.shape)")
        return apply(SubOp(), [a, b], shape: a.shape)
    }

    public func mul(_ a: Node, _ b: Node) -> Node {
        precondition(a.shape == b.shape, "mul of \(a.shape) and \(b.shape)")
        return apply(MulOp(), [a, b], shape: a.shape)
    }

    public func addScalar(_ x: Node, _ c: Float) -> Node { apply(AddScalarOp(c), [x], shape: x.shape) }
    public func sigmoid(_ x: Node) -> Node { apply(SigmoidOp(), [x], shape: x.shape) }
    public func tanh(_ x: Node) -> Node { apply(TanhOp(), [x], shape: x.shape) }
}
