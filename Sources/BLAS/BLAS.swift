import COpenBLAS

/// Single-precision matrix products through OpenBLAS, row-major, the only place that touches its C API.
public enum BLAS {
    /// Whether an operand is used as stored or transposed.
    public enum Transpose: Sendable {
        case none, transpose
        @usableFromInline var raw: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
    }

    /// Sets OpenBLAS's thread count for this process. Several trainer processes share one host,
    /// so each uses one thread by default rather than oversubscribing the cores.
    public static func setThreadCount(_ n: Int) {
        openblas_set_num_threads(Int32(max(1, n)))
    }

    /// The thread count OpenBLAS will use.
    public static var threadCount: Int { Int(openblas_get_num_threads()) }

    /// C = alpha · op(A) · op(B) + beta · C, row-major, where op(A) is m×k and op(B) is k×n.
    ///
    /// `lda`, `ldb`, `ldc` are the row strides of the matrices as stored; `beta = 1` accumulates,
    /// which is how every use of a shared variable adds into its one gradient buffer.
    @inlinable
    public static func sgemm(
        _ transA: Transpose, _ transB: Transpose,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(
            CblasRowMajor, transA.raw, transB.raw, Int32(m), Int32(n), Int32(k),
            alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y = alpha · op(A) · x + beta · y for row-major A [m, n] with row stride `lda`.
    @inlinable
    public static func sgemv(
        _ trans: Transpose, m: Int, n: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) {
        cblas_sgemv(CblasRowMajor, trans.raw, Int32(m), Int32(n), alpha, a, Int32(lda), x, 1, beta, y, 1)
    }

    /// A += alpha · x · yᵀ for row-major A [m, n] (a rank-one update).
    @inlinable
    public static func sger(
        m: Int, n: Int, alpha: Float = 1, x: UnsafePointer<Float>, y: UnsafePointer<Float>,
        a: UnsafeMutablePointer<Float>, lda: Int
    ) {
        cblas_sger(CblasRowMajor, Int32(m), Int32(n), alpha, x, 1, y, 1, a, Int32(lda))
    }

    /// Array form of `sgemm` for tests and small callers: returns op(A)·op(B) (m×n) for dense row-major inputs.
    public static func matmul(
        _ a: [Float], _ b: [Float], m: Int, n: Int, k: Int,
        transA: Transpose = .none, transB: Transpose = .none
    ) -> [Float] {
        precondition(a.count == m * k && b.count == k * n, "matmul operand sizes do not match m, n, k")
        var c = [Float](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    sgemm(
                        transA, transB, m: m, n: n, k: k,
                        a: pa.baseAddress!, lda: transA == .none ? k : m,
                        b: pb.baseAddress!, ldb: transB == .none ? n : k,
                        c: pc.baseAddress!, ldc: n)
                }
            }
        }
        return c
    }
}
