import Testing

@testable import Wire

@Suite("Tensor streams: tensors back to back, cut into frames anywhere")
struct TensorStreamTests {
    func floats(_ f: Frame) -> [Float] { f.withUnsafeBytes { [Float]($0.bindMemory(to: Float.self)) } }

    @Test("a sender cuts a tensor past the frame limit into whole-element chunks, packs small ones, and shares the rest")
    func sending() {
        let a: [Float] = [1, 2, 3, 4, 5]
        let b: [Float] = [6]
        a.withUnsafeBytes { ra in
            b.withUnsafeBytes { rb in
                // 20 bytes of a past a 8-byte limit: chunks of 8, 8, 4; b in one frame.
                let chunked = TensorStream.frames([ra, rb], maxFrameBytes: 9)
                #expect(chunked.map(\.count) == [8, 8, 4, 4])
                #expect(chunked.flatMap { floats($0) } == [1, 2, 3, 4, 5, 6])
                let pack = UnsafeMutableRawBufferPointer.allocate(byteCount: 24, alignment: 16)
                defer { pack.deallocate() }
                let packed = TensorStream.frames([ra, rb], pack: pack, maxFrameBytes: 24)
                #expect(packed.count == 1 && floats(packed[0]) == [1, 2, 3, 4, 5, 6])
                // Too big to pack: a frame each, even with a buffer.
                #expect(TensorStream.frames([ra, rb], pack: pack, maxFrameBytes: 20).map(\.count) == [20, 4])
            }
        }
        let owned = TensorStream.frames(owned: [Frame(floats: a)], maxFrameBytes: 12)
        #expect(owned.map { floats($0) } == [[1, 2, 3], [4, 5]])
    }

    @Test("a receiver takes each tensor in place or joins its chunks, whatever the cut; a wrong total is refused")
    func receiving() throws {
        let sizes = [8, 12, 0, 4]
        let all: [Float] = [1, 2, 3, 4, 5, 6]
        for cut in [[6], [2, 3, 0, 1], [1, 1, 1, 1, 1, 1], [3, 3], [2, 4], [0, 6, 0]] {
            var frames: [Frame] = []
            var start = 0
            for n in cut {
                frames.append(Frame(floats: Array(all[start..<start + n])))
                start += n
            }
            let tensors = try TensorStream.split(frames[...], sizes: sizes)
            #expect(tensors.map { floats($0) } == [[1, 2], [3, 4, 5], [], [6]], "cut \(cut)")
        }
        #expect(throws: TensorStream.Error.self) { try TensorStream.split([Frame(floats: all)][...], sizes: [8, 8]) }
        #expect(throws: TensorStream.Error.self) { try TensorStream.split([Frame(floats: all)][...], sizes: [24, 4]) }
        // Hostile sizes: overflow and negatives are refused, never trap.
        #expect(throws: TensorStream.Error.self) { try TensorStream.split([Frame(floats: all)][...], sizes: [Int.max, Int.max]) }
        #expect(throws: TensorStream.Error.self) { try TensorStream.split([Frame(floats: all)][...], sizes: [-4, 28]) }
        #expect(try TensorStream.split([][...], sizes: []).isEmpty)
    }
}
