import Foundation
import Testing

@testable import SafeTensors

@Suite("safetensors")
struct SafeTensorsTests {
    func tempPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID().uuidString)-\(name)").path
    }

    @Test("write then read round-trips names, shapes, values and metadata")
    func roundTrip() throws {
        let path = tempPath("a.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let tensors: [(name: String, shape: [Int], scalars: [Float])] = [
            ("lstm_cell_decoder/rnn/lstm_cell/kernel", [2, 3], [1, 2, 3, 4, 5, -6.5]),
            ("scalar", [], [42]),
            ("empty", [0], []),
        ]
        try SafeTensors.write(tensors, to: path, metadata: ["step": "7"])
        let back = try SafeTensors.read(path)
        #expect(back.count == 3)
        #expect(back["lstm_cell_decoder/rnn/lstm_cell/kernel"]?.scalars == [1, 2, 3, 4, 5, -6.5])
        #expect(back["scalar"]?.shape == [])
        #expect(back["empty"]?.scalars == [])
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect((8 + headerLength) % 8 == 0)
    }

    @Test("the golden files TensorFlow's script wrote are read, F32 and F64")
    func readsGolden() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../Fixtures/golden/small")
        let f32 = try SafeTensors.read(dir.appendingPathComponent("case.safetensors").path)
        let f64 = try SafeTensors.read(dir.appendingPathComponent("case_f64.safetensors").path)
        #expect(f32["input/x"]?.shape == [4, 6, 1])
        #expect(f32["input/x"]?.dtype == "F32" && f64["input/x"]?.dtype == "F64")
        #expect(f32["input/x"]?.scalars == f64["input/x"]?.scalars)
    }

    @Test("missing and malformed files get errors that name them")
    func errors() throws {
        #expect(
            throws: SafeTensors.Error.unreadable(path: "/no/such.safetensors", reason: "no such file or not readable")
        ) {
            try SafeTensors.read("/no/such.safetensors")
        }
        #expect(throws: SafeTensors.Error.self) { try SafeTensors.decode(Data([1, 2, 3])) }
        #expect(throws: SafeTensors.Error.self) { try SafeTensors.decode(Data([255, 0, 0, 0, 0, 0, 0, 0, 123])) }
        var bad = Data([12, 0, 0, 0, 0, 0, 0, 0])
        bad.append(contentsOf: Array("{\"a\":{}}    ".utf8))
        #expect(throws: SafeTensors.Error.self) { try SafeTensors.decode(bad) }
    }
}
