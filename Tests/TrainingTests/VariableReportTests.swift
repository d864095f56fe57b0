import Testing
import VariableScopes

@testable import Training

@Suite("--print-variables with partitioned variables")
struct VariableReportTests {
    /// A line's fields: name, then the shape as printed, then the bytes.
    func fields(_ line: Substring) -> (name: String, shape: String, bytes: String)? {
        guard let open = line.firstIndex(of: "("), let close = line.lastIndex(of: ")") else { return nil }
        return (
            String(line[..<open]).trimmingCharacters(in: .whitespaces), String(line[open...close]),
            String(line[line.index(after: close)...]).trimmingCharacters(in: .whitespaces)
        )
    }

    @Test("one line per part: its full name .../part_<i>, its own shape in parentheses, its bytes")
    func partsLine() throws {
        let g = Graph()
        try g.variableScope(g.currentVariableScope, partitioner: .fixedSize(3)) { _ in
            try g.variableScope("lstm_cell_decoder") { _ in
                try g.getVariable("weights_tilde", shape: [128, 43])
                try g.getVariable("bias_tilde", shape: [1, 43])
            }
        }
        let lines = VariableReport(g).text.split(separator: "\n")
        let rows = lines.compactMap(fields)
        #expect(
            rows.map(\.name) == [
                "lstm_cell_decoder/weights_tilde/part_0", "lstm_cell_decoder/weights_tilde/part_1",
                "lstm_cell_decoder/weights_tilde/part_2", "lstm_cell_decoder/bias_tilde/part_0",
            ])
        #expect(rows.map(\.shape) == ["(43, 43)", "(43, 43)", "(42, 43)", "(1, 43)"])
        #expect(rows.map(\.bytes) == ["7396", "7396", "7224", "172"])
        #expect(lines.last == "4 variables, 4 trainable, 22188 bytes; 4 of them parts of 2 partitioned variables")
    }

    @Test("a shape of any length is printed whole, closing parenthesis and all")
    func longShape() throws {
        let g = Graph()
        // Zero elements, so nothing is allocated, but a 20-dimension shape of 10-digit sizes.
        let long = [0] + Array(repeating: 1_234_567_890, count: 19)
        try g.getVariable("very/long/shape", shape: long, initializer: .zeros)
        try g.variableScope("enc", partitioner: .fixedSize(2)) { _ in
            try g.getVariable("kernel", shape: [1025, 8], initializer: .zeros)
        }
        let text = VariableReport(g).text
        let printed = "(0, " + Array(repeating: "1234567890", count: 19).joined(separator: ", ") + ")"
        let rows = text.split(separator: "\n").compactMap(fields)
        #expect(rows.map(\.name) == ["very/long/shape", "enc/kernel/part_0", "enc/kernel/part_1"])
        #expect(rows.map(\.shape) == [printed, "(513, 8)", "(512, 8)"], "\(text)")
        #expect(rows.map(\.bytes) == ["0", "16416", "16384"])
        for line in text.split(separator: "\n") {
            #expect(line.filter { $0 == "(" }.count == line.filter { $0 == ")" }.count, "cut: \(line)")
        }
    }
}
