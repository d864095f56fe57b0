import Optimizers
import Tensors
import VariableScopes
import Wire

/// The variables placed on this server, in registration order, with the bytes they hold: registration
/// (create-if-absent, every number checked before anything is created) and the whole-or-nothing update.
final class VariableStore {
    let server: String
    let limits: ServerLimits
    private(set) var variables: [String: ServedVariable] = [:]
    private(set) var order: [String] = []
    private(set) var bytesHeld = 0

    init(server: String, limits: ServerLimits, restored: [SavedVariable] = []) {
        self.server = server
        self.limits = limits
        for v in restored {
            variables[v.name] = ServedVariable(restoring: v)
            order.append(v.name)
            bytesHeld += v.value.count * 12
        }
    }

    subscript(name: String) -> ServedVariable? { variables[name] }
    var count: Int { order.count }

    /// The variables' state, in registration order, for checkpoints.
    var saved: [SavedVariable] { order.compactMap { variables[$0]?.saved } }

    /// Creates the variables of `specs` that do not exist (while `open`), and checks the others' shapes and
    /// dtypes; checks everything before creating anything, so a refused registration changes nothing.
    /// - Throws: `ErrorBody` naming the variable and the conflict or limit.
    /// - Parameter values: the values of the specs of kind `tensor`, by name (float32 frames of the right size).
    func register(_ specs: [VariableSpec], values: [String: Frame] = [:], by worker: String, open: Bool) throws(ErrorBody) {
        guard specs.count <= limits.maxNamesPerRequest else {
            throw limitError("a register names \(specs.count) variables", limits.maxNamesPerRequest, "--max-names-per-request")
        }
        var seen: Set<String> = []
        var created: [(spec: VariableSpec, initializer: Initializer)] = []
        var newBytes = 0
        for spec in specs {
            guard !spec.name.isEmpty, spec.name.utf8.count <= limits.maxNameLength else {
                throw ErrorBody(code: .malformed, message: "ps \(server): a variable name must have 1 to \(limits.maxNameLength) bytes")
            }
            guard seen.insert(spec.name).inserted else {
                throw ErrorBody(code: .malformed, message: "ps \(server): variable \(spec.name) is named twice in one register")
            }
            let count = try checkedCount(spec.shape, of: spec.name)
            _ = try checkedCount(spec.fanShape, of: spec.name + " (fan shape)", elementLimit: Int.max)
            if let slice = spec.slice {
                guard slice.fits(spec.shape), !slice.fullName.isEmpty, slice.fullName.utf8.count <= limits.maxNameLength,
                    slice.fullShape.count <= limits.maxRank
                else {
                    throw ErrorBody(
                        code: .malformed,
                        message:
                            "ps \(server): variable \(spec.name) says it is a part of \(slice.fullName.prefix(200)) \(formatShape(slice.fullShape)) at offset \(formatShape(slice.offset)), where a part of shape \(formatShape(spec.shape)) does not fit"
                    )
                }
            }
            guard DType(rawValue: spec.dtype) != nil else {
                throw ErrorBody(code: .dtypeConflict, message: "ps \(server): variable \(spec.name) has unknown dtype \(spec.dtype)")
            }
            if let existing = variables[spec.name] {
                if existing.shape != spec.shape {
                    throw ErrorBody(
                        code: .shapeConflict,
                        message:
                            "ps \(server): variable \(spec.name) has shape \(formatShape(existing.shape)) (registered by \(existing.registeredBy)), but \(worker) asks for shape \(formatShape(spec.shape)); every worker must build the model with the same sizes"
                    )
                }
                if existing.dtype != spec.dtype {
                    throw ErrorBody(
                        code: .dtypeConflict,
                        message:
                            "ps \(server): variable \(spec.name) has dtype \(existing.dtype) (registered by \(existing.registeredBy)), but \(worker) asks for dtype \(spec.dtype)"
                    )
                }
                continue
            }
            guard open else {
                throw ErrorBody(
                    code: .registrationClosed,
                    message:
                        "ps \(server): variable \(spec.name) does not exist, and new variables can be registered only while the job forms (before the first update); this server holds \(order.count) variables"
                )
            }
            guard let initializer = Self.initializer(spec.initializer, shape: spec.shape, count: count, values: values[spec.name]) else {
                throw ErrorBody(
                    code: .badInitializer, message: "ps \(server): variable \(spec.name) has an unusable initializer \(spec.initializer.kind)")
            }
            let (bytes, o1) = count.multipliedReportingOverflow(by: 12)
            let (total, o2) = (bytesHeld + newBytes).addingReportingOverflow(bytes)
            guard !o1, !o2, total <= limits.maxTotalBytes else {
                throw limitError(
                    "variable \(spec.name) (\(formatShape(spec.shape)), with its optimizer slots) would bring the bytes held past",
                    limits.maxTotalBytes, "--max-total-bytes")
            }
            newBytes += bytes
            created.append((spec, initializer))
        }
        guard order.count + created.count <= limits.maxVariables else {
            throw limitError("registering \(created.count) more variables would pass", limits.maxVariables, "--max-variables")
        }
        var made: [ServedVariable] = []
        for c in created {
            let values = c.initializer.values(shape: c.spec.shape, seed: c.spec.seed, name: c.spec.name, fanShape: c.spec.fanShape)
            guard values.allSatisfy(\.isFinite) else {
                throw ErrorBody(
                    code: .badInitializer, message: "ps \(server): the initializer of \(c.spec.name) gives values that are not finite")
            }
            made.append(
                ServedVariable(
                    name: c.spec.name, shape: c.spec.shape, dtype: c.spec.dtype, value: values, registeredBy: worker, slice: c.spec.slice))
        }
        for v in made {
            variables[v.name] = v
            order.append(v.name)
            bytesHeld += v.bytes
        }
    }

    /// Applies one update (float32 gradients × `scale`) to the named variables, whole or not at all: every
    /// variable's update is staged and checked finite before any is committed.
    /// - Returns: nil when applied, else the name of the first variable whose update would not be finite.
    func apply(_ optimizer: OptimizerConfig, names: [String], gradients: [Frame], scale: Float) -> String? {
        var staged: [ServedVariable] = []
        staged.reserveCapacity(names.count)
        for (name, frame) in zip(names, gradients) {
            guard let v = variables[name],
                frame.withUnsafeBytes({ v.stage(optimizer, gradient: $0.bindMemory(to: Float.self), scale: scale) })
            else { return name }
            staged.append(v)
        }
        for v in staged { v.commit(optimizer) }
        return nil
    }

    // MARK: - Checks

    func checkedCount(_ shape: [Int], of name: String, elementLimit: Int? = nil) throws(ErrorBody) -> Int {
        let limit = elementLimit ?? limits.maxVariableElements
        guard shape.count <= limits.maxRank else {
            throw limitError("variable \(name) has rank \(shape.count)", limits.maxRank, "(largest rank)")
        }
        guard let n = Limits.elementCount(shape), n <= limit else {
            throw ErrorBody(
                code: .limitExceeded,
                message:
                    "ps \(server): variable \(name) has shape \(formatShape(shape)), which is negative, overflows, or has more than \(limits.maxVariableElements) elements (--max-variable-elements)"
            )
        }
        return n
    }

    func limitError(_ what: String, _ limit: Int, _ flag: String) -> ErrorBody {
        ErrorBody(code: .limitExceeded, message: "ps \(server): \(what) the limit of \(limit) \(flag)")
    }

    /// - Parameter values: for kind `tensor`, the register's float32 frame of the values.
    static func initializer(_ spec: InitializerSpec, shape: [Int], count: Int, values: Frame? = nil) -> Initializer? {
        guard spec.a.isFinite, spec.b.isFinite else { return nil }
        switch spec.kind {
        case InitializerSpec.tensorKind:
            guard let frame = values, frame.count == count * 4 else { return nil }
            let scalars = frame.withUnsafeBytes { raw in
                [Float](unsafeUninitializedCapacity: count) { out, n in
                    UnsafeMutableRawBufferPointer(out).copyMemory(from: raw)
                    n = count
                }
            }
            guard scalars.withUnsafeBufferPointer({ allFinite($0) }) else { return nil }
            return .tensor(Tensor(shape: shape, scalars: scalars))
        case "zeros": return .zeros
        case "ones": return .ones
        case "constant": return .constant(spec.a)
        case "normal": return .normal(mean: spec.a, stddev: spec.b)
        case "truncated_normal": return .truncatedNormal(mean: spec.a, stddev: spec.b)
        case "glorot_uniform": return .glorotUniform
        case "uniform": return .uniform(lower: spec.a, upper: spec.b)
        default: return nil
        }
    }
}
