import Testing

@testable import LoadGenerator

@Suite("Memory bandwidth")
struct MemoryBandwidthTests {
    @Test("slices cover every element once, the first ones a row longer", arguments: [(10, 3), (7, 7), (1024, 2)])
    func partition(count: Int, parts: Int) {
        let p = Partition(count: count, parts: parts)
        let ranges = (0..<parts).map(p.range)
        #expect(ranges.first?.lowerBound == 0)
        #expect(ranges.last?.upperBound == count)
        for (a, b) in zip(ranges, ranges.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
        #expect(ranges.map(\.count).max()! - ranges.map(\.count).min()! <= 1)
    }

    @Test("copy and triad report positive, finite bytes per second, on one thread and on two")
    func measures() {
        for threads in [1, 2] {
            let m = MemoryBandwidth.measure(arrayBytes: 1 << 20, threads: threads, passes: 2)
            #expect(m.copy.isFinite && m.copy > 0)
            #expect(m.triad.isFinite && m.triad > 0)
            #expect(m.adamParameterUpdatesPerSecond == m.triad / 28)
        }
    }
}
