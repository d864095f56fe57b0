import Testing

@testable import VariableScopes

@Suite("--partitioner: the grammar, its canonical text and its errors")
struct PartitionerSpecTests {
    @Test(
        "valid values parse to their partitioner and print back canonically",
        arguments: [
            ("fixed_size:4", PartitionerSpec.fixedSize(shards: 4, axis: 0), "fixed_size:4"),
            ("fixed_size:4:0", .fixedSize(shards: 4, axis: 0), "fixed_size:4"),
            ("fixed_size:004:01", .fixedSize(shards: 4, axis: 1), "fixed_size:4:1"),
            ("min_max:8:262144", .minMax(maxPartitions: 8, minSliceBytes: 262_144, axis: 0), "min_max:8:262144"),
            ("min_max:8:262144:1", .minMax(maxPartitions: 8, minSliceBytes: 262_144, axis: 1), "min_max:8:262144:1"),
            ("min_max:0:1", .minMax(maxPartitions: 0, minSliceBytes: 1, axis: 0), "min_max:0:1"),
            ("axis_size:33554431", .axisSize(maxShardBytes: 33_554_431, axis: 0), "axis_size:33554431"),
            ("axis_size:1048576:2", .axisSize(maxShardBytes: 1_048_576, axis: 2), "axis_size:1048576:2"),
            ("axis_size:9007199254740992", .axisSize(maxShardBytes: 1 << 53, axis: 0), "axis_size:9007199254740992"),
            ("fixed_size:1:253", .fixedSize(shards: 1, axis: 253), "fixed_size:1:253"),
            ("auto", .auto, "auto"),
        ])
    func valid(_ text: String, _ spec: PartitionerSpec, _ canonical: String) throws {
        let parsed = try PartitionerSpec(parsing: text)
        #expect(parsed == spec)
        #expect(parsed.description == canonical)
        #expect(try PartitionerSpec(parsing: canonical) == spec)
        #expect((parsed.partitioner() == nil) == (spec == .auto))
    }

    @Test("the concrete specs make the partitioners they name")
    func partitioners() throws {
        let shape = [1025, 4096]
        #expect(try PartitionerSpec(parsing: "fixed_size:3").partitioner()!.partitions(shape, 4) == [3, 1])
        #expect(try PartitionerSpec(parsing: "fixed_size:3:1").partitioner()!.partitions(shape, 4) == [1, 3])
        #expect(try PartitionerSpec(parsing: "min_max:64:1048576").partitioner()!.partitions(shape, 4) == [17, 1])
        #expect(try PartitionerSpec(parsing: "axis_size:1048576").partitioner()!.partitions(shape, 4) == [17, 1])
        // A column of axis 1 is 1025 floats, 4100 bytes: 16 columns fit in 65600 bytes, 4096 / 16 = 256 parts.
        #expect(try PartitionerSpec(parsing: "axis_size:65600:1").partitioner()!.partitions(shape, 4) == [1, 256])
    }

    @Test(
        "anything else is refused with a typed error naming the flag, the text and the grammar",
        arguments: [
            ("", PartitionerSpecError.unknownKind(text: "")),
            ("Fixed_size:2", .unknownKind(text: "Fixed_size:2")),
            ("fixed:2", .unknownKind(text: "fixed:2")),
            ("auto:2", .wrongFieldCount(text: "auto:2", kind: "auto")),
            ("fixed_size", .wrongFieldCount(text: "fixed_size", kind: "fixed_size")),
            ("fixed_size:2:0:1", .wrongFieldCount(text: "fixed_size:2:0:1", kind: "fixed_size")),
            ("min_max:4", .wrongFieldCount(text: "min_max:4", kind: "min_max")),
            ("axis_size:1:2:3", .wrongFieldCount(text: "axis_size:1:2:3", kind: "axis_size")),
            ("fixed_size:", .notADecimal(text: "fixed_size:", field: "N", value: "")),
            ("fixed_size:-1", .notADecimal(text: "fixed_size:-1", field: "N", value: "-1")),
            ("fixed_size:+2", .notADecimal(text: "fixed_size:+2", field: "N", value: "+2")),
            ("fixed_size: 2", .notADecimal(text: "fixed_size: 2", field: "N", value: " 2")),
            ("fixed_size:2\n", .notADecimal(text: "fixed_size:2\n", field: "N", value: "2\n")),
            ("fixed_size:\u{663}", .notADecimal(text: "fixed_size:\u{663}", field: "N", value: "\u{663}")),
            ("fixed_size:2:-1", .notADecimal(text: "fixed_size:2:-1", field: "AXIS", value: "-1")),
            ("axis_size:1MB", .notADecimal(text: "axis_size:1MB", field: "MAX_SHARD_BYTES", value: "1MB")),
            ("axis_size:1e6", .notADecimal(text: "axis_size:1e6", field: "MAX_SHARD_BYTES", value: "1e6")),
            ("axis_size:1_000", .notADecimal(text: "axis_size:1_000", field: "MAX_SHARD_BYTES", value: "1_000")),
            ("min_max:x:1", .notADecimal(text: "min_max:x:1", field: "MAX_PARTITIONS", value: "x")),
            ("fixed_size:0", .zero(text: "fixed_size:0", field: "N")),
            ("min_max:4:0", .zero(text: "min_max:4:0", field: "MIN_SLICE_BYTES")),
            ("axis_size:0", .zero(text: "axis_size:0", field: "MAX_SHARD_BYTES")),
            ("axis_size:000:1", .zero(text: "axis_size:000:1", field: "MAX_SHARD_BYTES")),
            ("fixed_size:2:254", .tooLarge(text: "fixed_size:2:254", field: "AXIS", limit: 253)),
            (
                "axis_size:9007199254740993",
                .tooLarge(text: "axis_size:9007199254740993", field: "MAX_SHARD_BYTES", limit: 1 << 53)
            ),
            (
                "fixed_size:99999999999999999999999999999999",
                .tooLarge(text: "fixed_size:99999999999999999999999999999999", field: "N", limit: 1 << 53)
            ),
            (
                "fixed_size:2:99999999999999999999",
                .tooLarge(text: "fixed_size:2:99999999999999999999", field: "AXIS", limit: 253)
            ),
        ])
    func invalid(_ text: String, _ error: PartitionerSpecError) {
        #expect(throws: error) { try PartitionerSpec(parsing: text) }
        let message = error.description
        #expect(message.hasPrefix("--partitioner \(text.debugDescription)"))
        #expect(message.contains(PartitionerSpec.grammar))
    }

    @Test("hostile input is bounded: a megabyte of text is refused at once, and its message stays short")
    func hostileLength() {
        let text = "fixed_size:" + String(repeating: "9", count: 1 << 20)
        #expect(throws: PartitionerSpecError.tooLong(text: String(text.prefix(64)), limit: 128)) {
            try PartitionerSpec(parsing: text)
        }
        let colons = String(repeating: ":", count: 200)
        #expect(throws: PartitionerSpecError.tooLong(text: String(colons.prefix(64)), limit: 128)) {
            try PartitionerSpec(parsing: colons)
        }
        do {
            _ = try PartitionerSpec(parsing: text)
        } catch {
            #expect(error.description.count < 400)
        }
        // Control characters and quotes are escaped in the message, never printed raw.
        let e = PartitionerSpecError.unknownKind(text: "a\u{1b}[2J\"b")
        #expect(!e.description.contains("\u{1b}") && e.description.contains(#"\u{1B}"#))
    }

    @Test("every partitioner of the TensorFlow fixtures round-trips through its canonical text")
    func fixtureSpecsRoundTrip() throws {
        let texts = Set(
            PartitionFixture.loaded.cases.map(\.partitioner) + PartitionFixture.loaded.calls.map(\.partitioner))
        for text in texts {
            let spec = try PartitionerSpec(parsing: text)
            #expect(try PartitionerSpec(parsing: spec.description) == spec)
        }
    }
}
