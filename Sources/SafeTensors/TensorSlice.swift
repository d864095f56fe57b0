import Foundation

/// Where a part of a partitioned variable lies in the whole: TensorFlow's `SaveSliceInfo` (the full name,
/// the full shape, and the part's offset along each axis; its own shape is the tensor's). The servers'
/// checkpoints keep one for each part in their `variables` metadata, as `{"name": part, "slice": {"fullName",
/// "fullShape", "offset"}}`, so that any reader can put the whole variable back together.
public struct TensorSlice: Codable, Sendable, Equatable {
    public var fullName: String
    public var fullShape: [Int]
    public var offset: [Int]

    public init(fullName: String, fullShape: [Int], offset: [Int]) {
        self.fullName = fullName
        self.fullShape = fullShape
        self.offset = offset
    }

    /// Whether a part of `shape` fits the whole at `offset`: same rank, every number non-negative and every
    /// sum within the full shape (overflow-safe: the numbers come from the wire or a file).
    public func fits(_ shape: [Int]) -> Bool {
        guard fullShape.count == shape.count, offset.count == shape.count, wholeCount != nil else { return false }
        for k in shape.indices {
            guard offset[k] >= 0, shape[k] >= 0 else { return false }
            let (end, overflow) = offset[k].addingReportingOverflow(shape[k])
            guard !overflow, end <= fullShape[k] else { return false }
        }
        return true
    }

    /// The whole's element count, or nil when it is negative or overflows.
    public var wholeCount: Int? {
        var n = 1
        for d in fullShape {
            guard d >= 0 else { return nil }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            n = p
        }
        return n
    }

    /// Why the parts of a checkpoint cannot be put back together.
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case doesNotFit(part: String, slice: TensorSlice, shape: [Int])
        case tooLarge(part: String, whole: String, elements: Int)
        case disagree(part: String, whole: String, shape: [Int], other: [Int])
        case coverage(whole: String, shape: [Int], held: Int)

        public var description: String {
            switch self {
            case .doesNotFit(let p, let s, let shape):
                return "part \(p) \(shape) does not fit \(s.fullName.prefix(200)) \(s.fullShape) at offset \(s.offset)"
            case .tooLarge(let p, let w, let n):
                return "part \(p) says its whole \(w.prefix(200)) has \(n) elements, more than the checkpoint holds"
            case .disagree(let p, let w, let shape, let other):
                return "part \(p) says \(w.prefix(200)) has shape \(shape); another part says \(other)"
            case .coverage(let w, let shape, let held):
                return "the parts of \(w.prefix(200)) hold \(held) elements but the whole \(shape) has more or fewer: parts are missing or overlap"
            }
        }
    }

    /// The slice records in a server checkpoint's `variables` metadata, by part name.
    public static func records(in metadata: [String: String]) -> [String: TensorSlice] {
        struct Meta: Decodable {
            var name: String
            var slice: TensorSlice?
        }
        guard let text = metadata["variables"], let metas = try? JSONDecoder().decode([Meta].self, from: Data(text.utf8)) else {
            return [:]
        }
        var out: [String: TensorSlice] = [:]
        for m in metas { if let s = m.slice { out[m.name] = s } }
        return out
    }

    /// A model variable (not an `optimizer/` slot) that two of `files` both hold, and why that can be. Each
    /// server owns its own variables, so two holding one are either two copies trained side by side (workers
    /// that listed the servers in different orders: the files' `placement` metadata differ) or two runs'
    /// checkpoints in one directory (other ports, so other default names, or another number of servers).
    /// Which copy to read cannot be guessed.
    /// - Returns: a message naming the variable, both files and the likely cause; nil when every variable is
    ///   in one file at most.
    public static func duplicate(in files: [(path: String, names: [String], placement: String?)]) -> String? {
        var owner: [String: (path: String, placement: String?)] = [:]
        for (path, names, placement) in files {
            for name in names where !name.hasPrefix("optimizer/") {
                if let other = owner[name], other.path != path {
                    // Servers write an empty placement when no worker named one (an older worker).
                    if let a = other.placement, let b = placement, !a.isEmpty, !b.isEmpty, a != b {
                        return "variable \(name) is in both \(other.path) (server \(a)) and \(path) (server \(b)): two copies of the model were trained side by side by workers listing the servers in different --ps orders; use one consistent job's checkpoints"
                    }
                    return "variable \(name) is in both \(other.path) and \(path): checkpoints of two runs (or of two server layouts) share this directory; keep one run's files in it, or use that run's own --checkpoint-dir"
                }
                owner[name] = (path, placement)
            }
        }
        return nil
    }

    /// The whole variables of a checkpoint: tensors without a slice record as they are, parts put back in
    /// place in their whole.
    /// - Throws: `TensorSlice.Error` for a part that does not fit its whole, parts that disagree on it,
    ///   overlap or leave a gap, or a whole larger than the checkpoint itself.
    public static func assemble(
        _ tensors: [String: (shape: [Int], scalars: [Float])], slices: [String: TensorSlice]
    ) throws(Error) -> [String: (shape: [Int], scalars: [Float])] {
        var out: [String: (shape: [Int], scalars: [Float])] = [:]
        var covered: [String: Int] = [:]
        let available = tensors.values.reduce(0) { $0 + $1.scalars.count }
        for name in tensors.keys.sorted() {
            let t = tensors[name]!
            guard let slice = slices[name] else {
                out[name] = t
                continue
            }
            guard slice.fits(t.shape), let count = slice.wholeCount, t.scalars.count == t.shape.reduce(1, *) else {
                throw .doesNotFit(part: name, slice: slice, shape: t.shape)
            }
            // A whole is never larger than the parts a checkpoint holds: a record claiming more is damage.
            guard count <= available else { throw .tooLarge(part: name, whole: slice.fullName, elements: count) }
            if out[slice.fullName] == nil { out[slice.fullName] = (slice.fullShape, [Float](repeating: 0, count: count)) }
            guard out[slice.fullName]!.shape == slice.fullShape else {
                throw .disagree(part: name, whole: slice.fullName, shape: slice.fullShape, other: out[slice.fullName]!.shape)
            }
            insert(t.scalars, shape: t.shape, into: &out[slice.fullName]!.scalars, fullShape: slice.fullShape, at: slice.offset)
            covered[slice.fullName, default: 0] += t.scalars.count
        }
        for (name, n) in covered where n != out[name]!.scalars.count {
            throw .coverage(whole: name, shape: out[name]!.shape, held: n)
        }
        return out
    }

    /// Writes `part` (of `shape`) into `full` (of `fullShape`) at `offset`, a contiguous run (the last
    /// axis) at a time. The caller checked that it fits.
    static func insert(_ part: [Float], shape: [Int], into full: inout [Float], fullShape: [Int], at offset: [Int]) {
        guard !shape.isEmpty else {
            if !full.isEmpty, !part.isEmpty { full[0] = part[0] }
            return
        }
        guard !shape.contains(0) else { return }
        let rank = shape.count
        let run = shape[rank - 1]
        var strides = [Int](repeating: 1, count: rank)
        for k in stride(from: rank - 2, through: 0, by: -1) { strides[k] = strides[k + 1] * fullShape[k + 1] }
        var index = [Int](repeating: 0, count: rank)
        var partStart = 0
        while true {
            var fullStart = offset[rank - 1]
            for k in 0..<(rank - 1) { fullStart += (offset[k] + index[k]) * strides[k] }
            for j in 0..<run { full[fullStart + j] = part[partStart + j] }
            partStart += run
            var k = rank - 2
            while k >= 0 {
                index[k] += 1
                if index[k] < shape[k] { break }
                index[k] = 0
                k -= 1
            }
            if k < 0 { return }
        }
    }
}
