import Foundation
import SafeTensors

/// How a server combines workers' gradients.
public enum SyncMode: String, Codable, Sendable, CaseIterable {
    /// Wait for every active worker's gradient of step k, average, apply once, then serve step k+1.
    case sync
    /// Apply each push as it arrives (optionally bounded by staleness).
    case async
}

/// `.hello` body.
public struct Hello: Codable, Sendable, Equatable {
    public var workerName: String
    public var numWorkers: Int
    /// How this worker's tensors cross the wire (absent: float32). A server that cannot speak it refuses.
    public var wireDType: WireDType?
    /// The data scaling this worker trains with (`--scaling`): every worker of a job must use the same, and
    /// the servers record it in their checkpoints.
    public var scaling: String?
    /// Whether this worker can send and take a message's tensors packed into one frame, back to back in the
    /// order the body names them (absent: one frame per tensor). One frame costs fewer system calls and
    /// wake-ups per message than seven; a server that does not know the field answers without it, and the
    /// worker then sends a frame per tensor.
    public var packed: Bool?
    /// The largest frame this worker takes (its `--max-message-bytes`): a server packs values only up to it,
    /// and sends a larger tensor in chunks that fit (`TensorStream`).
    public var maxFrameBytes: Int?
    /// Optional: what a reader of the servers' checkpoints needs to use the model (sizes, normaliser, season,
    /// training columns), as JSON text the servers record verbatim in their checkpoints' metadata (`model`)
    /// without reading it. Servers keep the first they are told (at most `Hello.maxModelBytes`).
    public var model: String?
    /// How this worker partitions the model's variables (`--partitioner`, `none` without one): every worker
    /// of a job must give the same, since parts are variables of their own on the servers.
    public var partitioning: String?
    /// Where this server stands in the worker's `--ps` list, 1-based: "2 of 3". Variables are placed by that
    /// position, so workers listing the servers in different orders would each train their own copy of the
    /// model on different servers without a word; the server keeps the first it is told and refuses others.
    public var placement: String?
    /// The longest `model` text a server records.
    public static let maxModelBytes = 64 * 1024
    public init(
        workerName: String, numWorkers: Int, wireDType: WireDType? = nil, scaling: String? = nil, packed: Bool? = nil,
        maxFrameBytes: Int? = nil, model: String? = nil, partitioning: String? = nil, placement: String? = nil
    ) {
        self.placement = placement
        self.partitioning = partitioning
        self.model = model
        self.maxFrameBytes = maxFrameBytes
        self.workerName = workerName
        self.numWorkers = numWorkers
        self.wireDType = wireDType
        self.scaling = scaling
        self.packed = packed
    }
}

/// `.welcome` body: how the server runs, and where this worker resumes.
public struct Welcome: Codable, Sendable, Equatable {
    public var server: String
    public var mode: SyncMode
    public var staleness: Int?
    /// The optimizer, as a person reads it (the server applies it; workers only report it).
    public var optimizer: String
    /// Sync: how many workers' gradients a step may go without (TensorFlow's replicas-to-aggregate idea).
    public var backupWorkers: Int
    /// Updates this server has applied (restored from its checkpoint after a restart).
    public var updates: UInt64
    /// The step this worker index resumes after: the server's sync step, or (async) the last step this
    /// index pushed. 0 for a new job.
    public var resumeStep: UInt64
    /// The wire dtype agreed for this worker's tensors.
    public var wireDType: WireDType?
    /// The job's scaling as the server recorded it.
    public var scaling: String?
    /// Whether this worker's pushes and values travel packed (see `Hello.packed`): true only when it asked.
    /// Either side packs a message only when it fits the other's `maxFrameBytes`, and sends a frame per
    /// tensor otherwise; both take either form.
    public var packed: Bool?
    /// The largest frame this server takes (its `--max-message-bytes`): a worker packs only up to it, and
    /// sends a larger tensor in chunks that fit.
    public var maxFrameBytes: Int?

    public init(
        server: String, mode: SyncMode, staleness: Int?, optimizer: String, backupWorkers: Int = 0,
        updates: UInt64 = 0, resumeStep: UInt64 = 0, wireDType: WireDType? = nil, scaling: String? = nil,
        packed: Bool? = nil, maxFrameBytes: Int? = nil
    ) {
        self.packed = packed
        self.maxFrameBytes = maxFrameBytes
        self.wireDType = wireDType
        self.scaling = scaling
        self.server = server
        self.mode = mode
        self.staleness = staleness
        self.optimizer = optimizer
        self.backupWorkers = backupWorkers
        self.updates = updates
        self.resumeStep = resumeStep
    }
}

/// `.pushed` body: what became of a gradient.
public struct Pushed: Codable, Sendable, Equatable {
    public enum Outcome: String, Codable, Sendable {
        /// Applied now (async).
        case applied
        /// Sync: queued for its step, which is applied once enough workers have pushed. Nothing is applied
        /// yet: a server that crashes before the step loses it (the step then goes on without it).
        case queued
        /// A sync step that was already applied without it (a backup worker's late gradient): dropped.
        case late
    }

    public var outcome: Outcome
    /// Whether this acknowledges a re-sent request that had already been handled (nothing was applied again).
    public var duplicate: Bool
    public init(outcome: Outcome, duplicate: Bool = false) {
        self.outcome = outcome
        self.duplicate = duplicate
    }

    /// The encoded body. A server sends one acknowledgement per push and there are four of them, so each is
    /// encoded once per process.
    public var body: [UInt8] {
        switch (outcome, duplicate) {
        case (.applied, false): return Pushed.bodies.applied
        case (.applied, true): return Pushed.bodies.appliedDuplicate
        case (.late, false): return Pushed.bodies.late
        case (.late, true): return Pushed.bodies.lateDuplicate
        case (.queued, false): return Pushed.bodies.queued
        case (.queued, true): return Pushed.bodies.queuedDuplicate
        }
    }

    private static let bodies = (
        applied: Body.encode(Pushed(outcome: .applied)), appliedDuplicate: Body.encode(Pushed(outcome: .applied, duplicate: true)),
        queued: Body.encode(Pushed(outcome: .queued)), queuedDuplicate: Body.encode(Pushed(outcome: .queued, duplicate: true)),
        late: Body.encode(Pushed(outcome: .late)), lateDuplicate: Body.encode(Pushed(outcome: .late, duplicate: true))
    )
}

/// What a server needs to create a variable exactly as every worker would.
public struct VariableSpec: Codable, Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var dtype: String
    public var initializer: InitializerSpec
    public var seed: UInt64
    /// The shape whose fans set a Glorot limit (the whole variable's, for a partition).
    public var fanShape: [Int]
    /// For a part of a partitioned variable: where it lies in the whole (recorded in checkpoints, so any
    /// reader can put the whole back together). Absent for a whole variable.
    public var slice: SliceSpec?
    /// The element count, or nil when it overflows (a hostile shape must not trap).
    public var count: Int? { Limits.elementCount(shape) }

    public init(
        name: String, shape: [Int], dtype: String, initializer: InitializerSpec, seed: UInt64, fanShape: [Int]? = nil,
        slice: SliceSpec? = nil
    ) {
        self.slice = slice
        self.fanShape = fanShape ?? shape
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.initializer = initializer
        self.seed = seed
    }
}

/// Where a part of a partitioned variable lies in the whole (TensorFlow's `SaveSliceInfo`): the record
/// the servers' checkpoints keep, carried at registration.
public typealias SliceSpec = TensorSlice

/// An initializer in a wire-friendly form: `kind` with up to two parameters. Kind `tensor` is a worker's
/// current value (a restore, or a server that came back without its checkpoint), carried not here but as a
/// binary tensor frame of the register message; a server that already holds the variable ignores it.
public struct InitializerSpec: Codable, Sendable, Equatable {
    public var kind: String
    public var a: Float
    public var b: Float

    public init(kind: String, a: Float = 0, b: Float = 0) {
        self.kind = kind
        self.a = a
        self.b = b
    }

    /// The kind whose values travel as a tensor frame.
    public static let tensorKind = "tensor"
}

/// `.register` body. The values of the specs of kind `tensor` follow as float32 tensor frames, in the
/// specs' order (`TensorStream`): JSON carries names and shapes only.
public struct Register: Codable, Sendable, Equatable {
    public var variables: [VariableSpec]
    public init(variables: [VariableSpec]) { self.variables = variables }

    /// The specs whose values travel as tensor frames, in order.
    public var valued: [VariableSpec] { variables.filter { $0.initializer.kind == InitializerSpec.tensorKind } }
}

/// `.pull` and `.push` bodies, and `.values`: the variables the tensor frames belong to, in order.
public struct Names: Codable, Sendable, Equatable {
    public var names: [String]
    public init(names: [String]) { self.names = names }
}

/// `.values` body: the names the tensors carry, in order, and (sync) what became of this worker's recent
/// gradients that the server could not apply.
public struct ValuesBody: Codable, Sendable, Equatable {
    public var names: [String]
    /// Sync steps this worker contributed to that were dropped because their averaged gradient would have made
    /// a variable or its optimizer state non-finite, since the last values it got (absent: none).
    public var droppedSteps: Int?
    public init(names: [String], droppedSteps: Int? = nil) {
        self.names = names
        self.droppedSteps = droppedSteps
    }
}

/// `.error` body: a stable code, a message for a person, and whether trying again can succeed.
public struct ErrorBody: Codable, Sendable, Equatable, Error, CustomStringConvertible {
    public enum Code: String, Codable, Sendable {
        case malformed, unsupportedVersion, unknownVariable, shapeConflict, dtypeConflict, wrongTensorSize,
            notRegistered, staleStep, badInitializer, protocolOrder
        /// A number from the wire is past one of the server's limits (the message names the limit and its flag).
        case limitExceeded
        /// The request comes from a connection (or CURVE key) other than the one this worker index said hello on.
        case wrongIdentity
        /// Another live worker holds this task index.
        case indexTaken
        /// The worker count disagrees with the job's.
        case workerCount
        /// The gradient would make a variable or an optimizer slot NaN or infinite; nothing was applied.
        case nonFinite
        /// Registration of new variables is closed (the job has formed).
        case registrationClosed
        /// The worker asked for something this server does not support (a wire dtype, say).
        case unsupported
        /// The worker's settings disagree with the job's (its data scaling, say).
        case settingsConflict
        /// This task index finished its training (it said done); a new process for it has nothing left to do.
        case indexDone
        /// The CURVE key this connection was admitted with is no longer authorized (revoked).
        case keyRevoked

        /// Whether the same worker can go on after this refusal: a refused push is skipped (the next step's
        /// gradient may be fine), a connection the server no longer knows is bound again by a hello, a held
        /// index may be freed. Everything else is a conflict or a bug that trying again cannot fix.
        public var isRetryable: Bool {
            switch self {
            case .nonFinite, .wrongIdentity, .indexTaken: return true
            default: return false
            }
        }
    }

    public var code: Code
    public var message: String
    /// Whether trying again can succeed (absent in older servers' replies: the code's own `isRetryable`).
    public var retryable: Bool?
    public init(code: Code, message: String, retryable: Bool? = nil) {
        self.code = code
        self.message = message
        self.retryable = retryable ?? code.isRetryable
    }

    /// Whether the worker may go on after this refusal.
    public var canRetry: Bool { retryable ?? code.isRetryable }

    public var description: String { message }
}

/// Encoding and decoding of bodies.
public enum Body {
    /// Non-finite floats travel as strings, so that encoding never fails; receivers check finiteness.
    static let floatStrategy = (positive: "inf", negative: "-inf", nan: "nan")

    public static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        // The same value gives the same bytes in every process (key order is otherwise not fixed): bodies are
        // compared by their bytes (cached acknowledgements, recorded fuzz seeds).
        encoder.outputFormatting = .sortedKeys
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: floatStrategy.positive, negativeInfinity: floatStrategy.negative, nan: floatStrategy.nan)
        // With non-finite floats as strings, encoding these plain structs cannot fail.
        return Array(try! encoder.encode(value))
    }

    /// Bodies larger than this are refused before parsing. Bodies carry names and shapes only (tensors travel
    /// as binary frames): the largest legitimate one, a register of 4,096 variables, is well under it.
    public static let defaultLimit = 4 << 20

    /// The smallest per-frame limit a connection may have, whatever `--max-message-bytes` says: every body
    /// must fit in one frame (only tensors are cut into chunks), so the frame limit is at least the body limit.
    public static func frameLimit(_ maxMessageBytes: Int) -> Int { max(maxMessageBytes, defaultLimit + 4096) }

    /// - Throws: `WireError.badBody` naming the expected type.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws -> T {
        do {
            let decoder = JSONDecoder()
            decoder.nonConformingFloatDecodingStrategy = .convertFromString(
                positiveInfinity: floatStrategy.positive, negativeInfinity: floatStrategy.negative, nan: floatStrategy.nan)
            return try decoder.decode(T.self, from: Data(bytes))
        } catch DecodingError.dataCorrupted(let c) where c.codingPath.isEmpty && (try? JSONSerialization.jsonObject(
            with: Data(bytes), options: [.fragmentsAllowed])) != nil
        {
            // The decoder says "not valid JSON" for valid JSON holding a number no field can take (2^63 for an
            // Int): say what is wrong instead.
            throw WireError.badBody(
                expected: "\(T.self)", reason: "it is valid JSON, but a number in it is out of range for its field")
        } catch {
            throw WireError.badBody(expected: "\(T.self)", reason: "\(error)".prefix(200).description)
        }
    }
}

/// What can be wrong with a received message.
public enum WireError: Error, Equatable, CustomStringConvertible {
    case tooFewFrames(Int)
    case badHeaderSize(Int)
    case badMagic
    case unsupportedVersion(UInt8)
    case unknownKind(UInt8)
    case badBody(expected: String, reason: String)
    /// `names` is -1 when the body was not read yet.
    case tensorCountMismatch(header: Int, frames: Int, names: Int)
    case bodyTooLarge(bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case .tooFewFrames(let n): return "message has \(n) frames; a header and a body are required"
        case .badHeaderSize(let n): return "header frame has \(n) bytes; expected \(Header.size)"
        case .badMagic: return "header does not start with the protocol's magic bytes: not a parameter-server message"
        case .unsupportedVersion(let v):
            return "protocol version \(v) is not supported; this build speaks version \(Header.currentVersion)"
        case .unknownKind(let k): return "unknown message kind \(k)"
        case .badBody(let t, let r): return "body is not a valid \(t): \(r)"
        case .bodyTooLarge(let b, let l): return "body has \(b) bytes; the limit is \(l)"
        case .tensorCountMismatch(let h, let f, let n):
            return n < 0
                ? "header announces \(h) tensors, message carries \(f) tensor frames"
                : "the body names \(n) variables but the message carries \(f) tensor frames (one per variable, or one packed frame from a worker that offered packed in hello)"
        }
    }

    /// The error code to send back.
    public var code: ErrorBody.Code {
        if case .unsupportedVersion = self { return .unsupportedVersion }
        return .malformed
    }
}

/// Overflow-safe arithmetic on numbers that came from the wire.
public enum Limits {
    /// The product of `shape`'s dimensions, or nil when a dimension is negative or the product overflows.
    public static func elementCount(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            n = p
        }
        return n
    }
}
