import Testing

@testable import BLAS

@Suite("BLAS")
struct SgemmTests {
    /// The textbook triple loop, as the independent reference.
    func reference(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, ta: Bool, tb: Bool) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s: Float = 0
                for p in 0..<k {
                    let av = ta ? a[p * m + i] : a[i * k + p]
                    let bv = tb ? b[j * k + p] : b[p * n + j]
                    s += av * bv
                }
                c[i * n + j] = s
            }
        }
        return c
    }

    @Test(
        "sgemm matches the triple loop for every transpose",
        arguments: [(false, false), (true, false), (false, true), (true, true)])
    func transposes(ta: Bool, tb: Bool) {
        let (m, n, k) = (5, 7, 3)
        let a = (0..<(m * k)).map { Float($0 % 11) - 4.5 }
        let b = (0..<(k * n)).map { Float($0 % 7) * 0.25 - 1 }
        let got = BLAS.matmul(a, b, m: m, n: n, k: k, transA: ta ? .transpose : .none, transB: tb ? .transpose : .none)
        let want = reference(a, b, m: m, n: n, k: k, ta: ta, tb: tb)
        for (x, y) in zip(got, want) { #expect(abs(x - y) < 1e-4) }
    }

    @Test("strides and beta = 1 accumulate into a sub-block")
    func stridesAndAccumulate() {
        // A is the left 2x2 block of a 2x4 buffer; C is a 2x2 block of a 2x3 buffer, accumulated twice.
        let a: [Float] = [1, 2, 99, 99, 3, 4, 99, 99]
        let b: [Float] = [1, 0, 0, 1]
        var c = [Float](repeating: 0, count: 6)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    for _ in 0..<2 {
                        BLAS.sgemm(
                            .none, .none, m: 2, n: 2, k: 2, a: pa.baseAddress!, lda: 4,
                            b: pb.baseAddress!, ldb: 2, beta: 1, c: pc.baseAddress! + 1, ldc: 3)
                    }
                }
            }
        }
        #expect(c == [0, 2, 4, 0, 6, 8])
    }

    @Test("thread count is set per process")
    func threads() {
        BLAS.setThreadCount(1)
        #expect(BLAS.threadCount == 1)
    }
}
