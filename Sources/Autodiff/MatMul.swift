import BLAS

/// C = A · B for A [m, k] and B [k, n], through OpenBLAS.
final class MatMulOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        let (a, b) = (i[0], i[1])
        let (m, k, n) = (a.rows, a.cols, b.cols)
        BLAS.sgemm(
            .none, .none, m: m, n: n, k: k, a: a.value.baseAddress!, lda: k,
            b: b.value.baseAddress!, ldb: n, beta: 0, c: out.value.baseAddress!, ldc: n)
    }

    func backward(_ i: [Node], _ out: Node) {
        let (a, b) = (i[0], i[1])
        let (m, k, n) = (a.rows, a.cols, b.cols)
        // dA += dC · Bᵀ ; dB += Aᵀ · dC. beta = 1 is what sums a shared weight's uses.
        BLAS.sgemm(
            .none, .transpose, m: m, n: k, k: n, a: out.grad.baseAddress!, lda: n,
            b: b.value.baseAddress!, ldb: n, beta: 1, c: a.grad.baseAddress!, ldc: k)
        BLAS.sgemm(
            .transpose, .none, m: k, n: n, k: m, a: a.value.baseAddress!, lda: k,
            b: out.grad.baseAddress!, ldb: n, beta: 1, c: b.grad.baseAddress!, ldc: n)
    }
}

extension Tape {
    /// `a · b` for 2-D `a` [m, k] and `b` [k, n].
    public func matmul(_ a: Node, _ b: Node) -> Node {
        precondition(
            a.shape.count == 2 && b.shape.count == 2 && a.shape[1] == b.shape[0],
            "matmul of \(a.shape) and \(b.shape)")
        return apply(MatMulOp(), [a, b], shape: [a.shape[0], b.shape[1]])
    }
}

/// y = x · W + b for x [m, k], W [k, n], b [n] or [1, n]: the dense layer, fused so the bias costs no
/// extra pass over the output and no intermediate node.
final class AffineOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        let (x, w, b) = (i[0], i[1], i[2])
        let (m, k, n) = (x.rows, x.cols, w.cols)
        let o = out.value.baseAddress!
        let bias = b.value.baseAddress!
        for r in 0..<m { (o + r * n).update(from: bias, count: n) }
        BLAS.sgemm(
            .none, .none, m: m, n: n, k: k, a: x.value.baseAddress!, lda: k,
            b: w.value.baseAddress!, ldb: n, beta: 1, c: o, ldc: n)
    }

    func backward(_ i: [Node], _ out: Node) {
        let (x, w, b) = (i[0], i[1], i[2])
        let (m, k, n) = (x.rows, x.cols, w.cols)
        let g = out.grad.baseAddress!
        BLAS.sgemm(
            .none, .transpose, m: m, n: k, k: n, a: g, lda: n,
            b: w.value.baseAddress!, ldb: n, beta: 1, c: x.grad.baseAddress!, ldc: k)
        BLAS.sgemm(
            .transpose, .none, m: k, n: n, k: m, a: x.value.baseAddress!, lda: k,
            b: g, ldb: n, beta: 1, c: w.grad.baseAddress!, ldc: n)
        let gb = b.grad.baseAddress!
        for r in 0..<m {
            let row = g + r * n
            for c in 0..<n { gb[c] += row[c] }
        }
    }
}

extension Tape {
    /// `x · w + b` for 2-D `x` [m, k], `w` [k, n] and `b` of n elements.
    public func affine(_ x: Node, _ w: Node, _ b: Node) -> Node {
        precondition(
            x.shape.count == 2 && w.shape.count == 2 && x.shape[1] == w.shape[0] && b.count == w.shape[1],
            "affine of \(x.shape), \(w.shape) and \(b.shape)")
        return apply(AffineOp(), [x, w, b], shape: [x.shape[0], w.shape[1]])
    }
}
