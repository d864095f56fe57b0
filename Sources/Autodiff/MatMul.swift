import BLAS

/// C = A · B for A [m, k] and B [k, n], through OpenBLAS.
final class MatMulOp: Op {
    func forward(_ i: [Node], _ out: Node) {
        let (a, b) = (i[0], i[1])
        let (m, k, n) = (a.rows, a.cols, b.cols)
        BLAS.sgemm(.none, .none, m: m, n: n, k: k, a: a.value.baseAddress!, lda: k,
                   b: b.value.baseAddress!, ldb: n, beta: 0, c: out.value.baseAddress!, ldc: n)
    }

    func backward(_ i: [Node], _ out: Node) {
        let (a, b) = (i[0], i[1])
        let (m, k, n) = (a.rows, a.cols, b.cols)
        // dA += dC · Bᵀ ; dB += Aᵀ · dC. beta = 1 is what sums a shared weight's uses.
        BLAS.sgemm(.none, .transpose, m: m, n: k, k: n, a: out.grad.baseAddress!, lda: n,
                   b: b.value.baseAddress!, ldb: n, beta: 1, c: a.grad.baseAddress!, ldc: k)
        BLAS.sgemm(.transpose, .none, m: k, n: n, k: m, a: a.value.baseAddress!, lda: k,
                   b: out.grad.baseAddress!, ldb: n, beta: 1, c: b.grad.baseAddress!, ldc: n)
    }
}

extension Tape {
    /// `a · b` for 2-D `a` [m, k] and `b` [k, n].
    public func matmul(_ a: Node, _ b: Node) -> Node {
        precondition(a.shape.count == 2 && b.shape.count == 2 && a.shape[1] == b.shape[0],
                     "matmul of \(a.shape) and \(b.shape)")
        return apply(MatMulOp(), [a, b], shape: [a.shape[0], b.shape[1]])
    }
}
