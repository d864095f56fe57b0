import Foundation
import Optimizers
import Tensors
import VariableScopes

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
    public init(workerName: String, numWorkers: Int) {
        self.workerName = workerName
        self.numWorkers = numWorkers
    }
}

/// `.welcome` body.
public struct Welcome: Codable, Sendable, Equatable {
    public var server: String
    public var mode: SyncMode
    public var staleness: Int?
    public var optimizer: OptimizerConfig
    public init(server: String, mode: SyncMode, staleness: Int?, optimizer: OptimizerConfig) {
        self.server = server
        self.mode = mode
        self.staleness = staleness
        self.optimizer = optimizer
    }
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
    public var count: Int { shape.reduce(1, *) }

    public init(
        name: String, shape: [Int], dtype: String, initializer: InitializerSpec, seed: UInt64, fanShape: [Int]? = nil
    ) {
        self.fanShape = fanShape ?? shape
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.initializer = initializer
        self.seed = seed
    }

    /// The spec of a variable of a graph.
    public init(_ v: Variable, seed: UInt64) {
        self.init(
            name: v.name, shape: v.shape, dtype: v.dtype.rawValue, initializer: InitializerSpec(v.initializer),
            seed: seed,
            fanShape: v.fanShape)
    }
}

/// `Initializer` in a wire-friendly form.
public struct InitializerSpec: Codable, Sendable, Equatable {
    public var kind: String
    public var a: Float
    public var b: Float
    /// The explicit value of a `tensor` initializer.
    public var values: [Float]?

    public init(_ i: Initializer) {
        values = nil
        switch i {
        case .zeros: (kind, a, b) = ("zeros", 0, 0)
        case .ones: (kind, a, b) = ("ones", 0, 0)
        case .constant(let v): (kind, a, b) = ("constant", v, 0)
        case .normal(let m, let s): (kind, a, b) = ("normal", m, s)
        case .truncatedNormal(let m, let s): (kind, a, b) = ("truncated_normal", m, s)
        case .glorotUniform: (kind, a, b) = ("glorot_uniform", 0, 0)
        case .uniform(let l, let u): (kind, a, b) = ("uniform", l, u)
        case .tensor(let t): (kind, a, b, values) = ("tensor", 0, 0, t.scalars)
        }
    }

    /// The initializer for a variable of `shape`, or nil for an unknown kind or a value of the wrong size.
    public func initializer(shape: [Int]) -> Initializer? {
        switch kind {
        case "tensor":
            guard let values, values.count == shape.reduce(1, *) else { return nil }
            return .tensor(Tensor(shape: shape, scalars: values))
        case "zeros": return .zeros
        case "ones": return .ones
        case "constant": return .constant(a)
        case "normal": return .normal(mean: a, stddev: b)
        case "truncated_normal": return .truncatedNormal(mean: a, stddev: b)
        case "glorot_uniform": return .glorotUniform
        case "uniform": return .uniform(lower: a, upper: b)
        default: return nil
        }
    }
}

/// `.register` body.
public struct Register: Codable, Sendable, Equatable {
    public var variables: [VariableSpec]
    public init(variables: [VariableSpec]) { self.variables = variables }
}

/// `.pull` and `.push` bodies, and `.values`: the variables the tensor frames belong to, in order.
public struct Names: Codable, Sendable, Equatable {
    public var names: [String]
    public init(names: [String]) { self.names = names }
}

/// `.error` body: a stable code and a message for a person.
public struct ErrorBody: Codable, Sendable, Equatable, Error, CustomStringConvertible {
    public enum Code: String, Codable, Sendable {
        case malformed, unsupportedVersion, unknownVariable, shapeConflict, dtypeConflict, wrongTensorSize,
            notRegistered, staleStep, badInitializer, protocolOrder
    }

    public var code: Code
    public var message: String
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// Encoding and decoding of bodies.
public enum Body {
    public static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        // Encoding these plain structs cannot fail.
        Array(try! JSONEncoder().encode(value))
    }

    /// - Throws: `WireError.badBody` naming the expected type.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
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

    public var description: String {
        switch self {
        case .tooFewFrames(let n): return "message has \(n) frames; a header and a body are required"
        case .badHeaderSize(let n): return "header frame has \(n) bytes; expected \(Header.size)"
        case .badMagic: return "header does not start with the protocol's magic bytes: not a parameter-server message"
        case .unsupportedVersion(let v):
            return "protocol version \(v) is not supported; this build speaks version \(Header.currentVersion)"
        case .unknownKind(let k): return "unknown message kind \(k)"
        case .badBody(let t, let r): return "body is not a valid \(t): \(r)"
        case .tensorCountMismatch(let h, let f, let n):
            return n < 0
                ? "header announces \(h) tensors, message carries \(f) tensor frames"
                : "header announces \(h) tensors, message carries \(f) tensor frames for \(n) variable names"
        }
    }

    /// The error code to send back.
    public var code: ErrorBody.Code {
        if case .unsupportedVersion = self { return .unsupportedVersion }
        return .malformed
    }
}
