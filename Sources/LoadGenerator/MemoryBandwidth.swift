import Foundation

/// This machine's memory bandwidth, measured as STREAM does (McCalpin, "Memory Bandwidth and Machine
/// Balance", IEEE TCCA Newsletter, 1995): `copy` (a[i] = b[i]) and `triad` (a[i] = b[i] + s·c[i]) over
/// arrays far larger than the caches, best of several passes, counting only the bytes the kernel names
/// (copy 8 per float pair, triad 12 per float triple; write-allocate traffic is not counted).
///
/// It is the physical ceiling of a parameter server's update: Adam reads the value, both moments and the
/// gradient and writes the value and both moments, 28 bytes per float32 parameter, so a server cannot apply
/// more than bandwidth / 28 parameter updates per second, however good its code.
public struct MemoryBandwidth: Sendable, Equatable {
    /// Bytes per second.
    public var copy: Double
    public var triad: Double
    /// Threads that ran the kernels at once (each on its own slice).
    public var threads: Int
    /// Bytes in each of the three arrays.
    public var arrayBytes: Int

    /// Bytes Adam moves per parameter it updates: reads value, m, v and the gradient; writes value, m, v.
    public static let adamBytesPerParameter = 28

    public init(copy: Double, triad: Double, threads: Int, arrayBytes: Int) {
        self.copy = copy
        self.triad = triad
        self.threads = threads
        self.arrayBytes = arrayBytes
    }

    /// Measures copy and triad.
    /// - Parameters:
    ///   - arrayBytes: each array's size; STREAM asks for at least 4 times the last-level cache.
    ///   - threads: threads running at once, each on 1/threads of every array.
    ///   - passes: the best of this many timed passes counts (the first pass also faults the pages in).
    public static func measure(arrayBytes: Int = 128 << 20, threads: Int = 1, passes: Int = 8) -> MemoryBandwidth {
        let n = max(1024, arrayBytes / 4)
        let arrays = Arrays(count: n)
        defer { arrays.deallocate() }
        let slices = Partition(count: n, parts: max(1, threads))
        var bestCopy = Double.infinity
        var bestTriad = Double.infinity
        for _ in 0..<max(2, passes) {
            bestCopy = min(bestCopy, timed(slices) { r in copyKernel(arrays, r) })
            bestTriad = min(bestTriad, timed(slices) { r in triadKernel(arrays, r, scalar: 3) })
        }
        return MemoryBandwidth(
            copy: Double(8 * n) / bestCopy, triad: Double(12 * n) / bestTriad, threads: max(1, threads),
            arrayBytes: n * 4)
    }

    /// The parameter updates per second Adam could reach at the triad bandwidth.
    public var adamParameterUpdatesPerSecond: Double { triad / Double(Self.adamBytesPerParameter) }

    /// Runs `kernel` on every slice at once (one thread per slice, the caller's thread taking the first)
    /// and returns the seconds the slowest took.
    static func timed(_ slices: Partition, _ kernel: @escaping @Sendable (Range<Int>) -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        if slices.parts == 1 {
            kernel(slices.range(0))
        } else {
            DispatchQueue.concurrentPerform(iterations: slices.parts) { kernel(slices.range($0)) }
        }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    @inline(never)
    static func copyKernel(_ arrays: Arrays, _ r: Range<Int>) {
        let dst = arrays.a
        let src = UnsafePointer(arrays.b)
        for i in r { dst[i] = src[i] }
    }

    @inline(never)
    static func triadKernel(_ arrays: Arrays, _ r: Range<Int>, scalar: Float) {
        let dst = arrays.a
        let x = UnsafePointer(arrays.b)
        let y = UnsafePointer(arrays.c)
        for i in r { dst[i] = x[i] + scalar * y[i] }
    }
}

/// `count` elements cut into `parts` contiguous ranges, the first ones a row longer.
struct Partition: Sendable {
    let count: Int
    let parts: Int
    func range(_ i: Int) -> Range<Int> {
        let base = count / parts
        let extra = count % parts
        let start = i * base + min(i, extra)
        return start..<(start + base + (i < extra ? 1 : 0))
    }
}

/// The three arrays, written by several threads at once, each in its own slice only.
struct Arrays: @unchecked Sendable {
    let a: UnsafeMutablePointer<Float>
    let b: UnsafeMutablePointer<Float>
    let c: UnsafeMutablePointer<Float>

    init(count: Int) {
        a = .allocate(capacity: count)
        b = .allocate(capacity: count)
        c = .allocate(capacity: count)
        a.initialize(repeating: 1, count: count)
        b.initialize(repeating: 2, count: count)
        c.initialize(repeating: 0.5, count: count)
    }

    func deallocate() {
        a.deallocate()
        b.deallocate()
        c.deallocate()
    }
}
