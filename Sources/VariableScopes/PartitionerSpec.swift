/// The worker's `--partitioner` value: which of TensorFlow's partitioners applies to the whole model,
/// with its numbers, as typed data that every worker can print and compare.
///
/// Grammar, exactly: `fixed_size:N[:AXIS] | min_max:MAX_PARTITIONS:MIN_SLICE_BYTES[:AXIS] |
/// axis_size:MAX_SHARD_BYTES[:AXIS] | auto`. Numbers are plain decimal integers (ASCII digits only, no
/// sign, no spaces, no units); the axis is 0 unless given. `description` gives back the canonical text
/// (no axis when it is 0, no leading zeros), so two workers' texts are equal exactly when their
/// partitionings are.
public enum PartitionerSpec: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// `fixed_size:N[:AXIS]`: `Partitioner.fixedSize(N, axis:)`.
    case fixedSize(shards: Int, axis: Int)
    /// `min_max:MAX_PARTITIONS:MIN_SLICE_BYTES[:AXIS]`: `Partitioner.minMax(...)`.
    case minMax(maxPartitions: Int, minSliceBytes: Int, axis: Int)
    /// `axis_size:MAX_SHARD_BYTES[:AXIS]`: `Partitioner.variableAxisSize(maxShardBytes:axis:)`.
    case axisSize(maxShardBytes: Int, axis: Int)
    /// `auto`: a partitioning chosen for the servers at hand, resolved outside this module.
    case auto

    /// The flag this value comes from, for messages.
    public static let flag = "--partitioner"
    /// The grammar, as messages and help print it.
    public static let grammar =
        "fixed_size:N[:AXIS] | min_max:MAX_PARTITIONS:MIN_SLICE_BYTES[:AXIS] | axis_size:MAX_SHARD_BYTES[:AXIS] | auto"
    /// Longest text accepted, in UTF-8 bytes: the longest valid value is well under it.
    public static let maxTextBytes = 128
    /// Largest number accepted for counts and bytes: 2^53, below which TensorFlow's float arithmetic
    /// on them is exact.
    public static let maxNumber = 1 << 53
    /// Largest axis accepted: TensorFlow's tensors have at most 254 dimensions.
    public static let maxAxis = 253

    /// Parses a `--partitioner` value.
    ///
    /// Counts and bytes that TensorFlow refuses are refused here: `N` of 0 (TensorFlow makes 0 parts and
    /// fails), a `MIN_SLICE_BYTES` of 0 (it divides by it), a `MAX_SHARD_BYTES` of 0 (its `ValueError`).
    /// A `MAX_PARTITIONS` of 0 is accepted, as in TensorFlow, where it means one part.
    /// - Throws: `PartitionerSpecError`, naming the flag, the text and the grammar.
    public init(parsing text: String) throws(PartitionerSpecError) {
        guard text.utf8.count <= Self.maxTextBytes else {
            throw .tooLong(text: PartitionerSpecError.excerpt(text), limit: Self.maxTextBytes)
        }
        if text == "auto" {
            self = .auto
            return
        }
        let fields = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let kind = fields[0]
        let args = Array(fields.dropFirst())
        func number(_ i: Int, _ field: String, allowZero: Bool) throws(PartitionerSpecError) -> Int {
            try Self.decimal(args[i], field: field, in: text, allowZero: allowZero, limit: Self.maxNumber)
        }
        func axis(_ i: Int) throws(PartitionerSpecError) -> Int {
            guard i < args.count else { return 0 }
            return try Self.decimal(args[i], field: "AXIS", in: text, allowZero: true, limit: Self.maxAxis)
        }
        switch kind {
        case "fixed_size":
            guard args.count == 1 || args.count == 2 else { throw .wrongFieldCount(text: text, kind: kind) }
            self = .fixedSize(shards: try number(0, "N", allowZero: false), axis: try axis(1))
        case "min_max":
            guard args.count == 2 || args.count == 3 else { throw .wrongFieldCount(text: text, kind: kind) }
            self = .minMax(
                maxPartitions: try number(0, "MAX_PARTITIONS", allowZero: true),
                minSliceBytes: try number(1, "MIN_SLICE_BYTES", allowZero: false), axis: try axis(2))
        case "axis_size":
            guard args.count == 1 || args.count == 2 else { throw .wrongFieldCount(text: text, kind: kind) }
            self = .axisSize(maxShardBytes: try number(0, "MAX_SHARD_BYTES", allowZero: false), axis: try axis(1))
        case "auto":
            throw .wrongFieldCount(text: text, kind: kind)
        default:
            throw .unknownKind(text: text)
        }
    }

    /// The canonical text: `fixed_size:4`, `min_max:8:262144:1`, `axis_size:1048576`, `auto`.
    public var description: String {
        func withAxis(_ s: String, _ axis: Int) -> String { axis == 0 ? s : "\(s):\(axis)" }
        switch self {
        case .fixedSize(let n, let axis): return withAxis("fixed_size:\(n)", axis)
        case .minMax(let m, let b, let axis): return withAxis("min_max:\(m):\(b)", axis)
        case .axisSize(let b, let axis): return withAxis("axis_size:\(b)", axis)
        case .auto: return "auto"
        }
    }

    /// The partitioner this names; nil for `auto`, which is resolved where the servers are known.
    public func partitioner() -> Partitioner? {
        switch self {
        case .fixedSize(let n, let axis): return .fixedSize(n, axis: axis)
        case .minMax(let m, let b, let axis): return .minMax(maxPartitions: m, minSliceBytes: b, axis: axis)
        case .axisSize(let b, let axis): return .variableAxisSize(maxShardBytes: b, axis: axis)
        case .auto: return nil
        }
    }

    /// A plain decimal integer of at most `limit` (at most `maxNumber`), read without overflow.
    static func decimal(
        _ s: String, field: String, in text: String, allowZero: Bool, limit: Int
    ) throws(PartitionerSpecError) -> Int {
        guard !s.isEmpty, s.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw .notADecimal(text: text, field: field, value: s)
        }
        var value = 0
        for digit in s.utf8 {
            value = value * 10 + Int(digit - UInt8(ascii: "0"))
            // Checked at every digit, so the product above stays far from Int.max.
            guard value <= limit else { throw .tooLarge(text: text, field: field, limit: limit) }
        }
        guard allowZero || value > 0 else { throw .zero(text: text, field: field) }
        return value
    }
}

/// A `--partitioner` value that does not follow the grammar. Every message names the flag, quotes the
/// text (escaped, and cut to its first 64 characters if longer) and gives the grammar.
public enum PartitionerSpecError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Longer than `PartitionerSpec.maxTextBytes`; `text` is its beginning.
    case tooLong(text: String, limit: Int)
    /// Not `fixed_size`, `min_max`, `axis_size` or `auto` before the first `:`.
    case unknownKind(text: String)
    /// Too few or too many `:`-separated numbers for its kind.
    case wrongFieldCount(text: String, kind: String)
    /// A field that is not a plain decimal integer (empty, signed, spaced, with units...).
    case notADecimal(text: String, field: String, value: String)
    /// A number above its limit.
    case tooLarge(text: String, field: String, limit: Int)
    /// A count or byte size of 0, which TensorFlow refuses.
    case zero(text: String, field: String)

    public var description: String {
        let flag = PartitionerSpec.flag
        let grammar = "expected \(PartitionerSpec.grammar), with plain decimal integers and AXIS 0 unless given"
        switch self {
        case .tooLong(let text, let limit):
            return "\(flag) \(Self.quoted(text))...: longer than \(limit) bytes; \(grammar)"
        case .unknownKind(let text):
            return "\(flag) \(Self.quoted(text)): unknown partitioner; \(grammar)"
        case .wrongFieldCount(let text, let kind):
            let want =
                switch kind {
                case "fixed_size": "fixed_size:N[:AXIS]"
                case "min_max": "min_max:MAX_PARTITIONS:MIN_SLICE_BYTES[:AXIS]"
                case "axis_size": "axis_size:MAX_SHARD_BYTES[:AXIS]"
                default: "auto, with nothing after it"
                }
            return "\(flag) \(Self.quoted(text)): \(kind) takes \(want); \(grammar)"
        case .notADecimal(let text, let field, let value):
            return
                "\(flag) \(Self.quoted(text)): \(field) \(Self.quoted(value)) is not a plain decimal integer; \(grammar)"
        case .tooLarge(let text, let field, let limit):
            return "\(flag) \(Self.quoted(text)): \(field) is above its limit of \(limit); \(grammar)"
        case .zero(let text, let field):
            return "\(flag) \(Self.quoted(text)): \(field) must be at least 1, as TensorFlow requires; \(grammar)"
        }
    }

    /// The text as a quoted Swift literal, control characters and quotes escaped, at most 64 characters.
    static func quoted(_ text: String) -> String { excerpt(text).debugDescription }

    /// At most the first 64 characters of `text`.
    static func excerpt(_ text: String) -> String { text.count <= 64 ? text : String(text.prefix(64)) }
}
