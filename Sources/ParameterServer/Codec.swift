import Wire
import Tensors

/// A request as the rules see it: decoded from its frames, its names checked against the variables held
/// here, its tensors cut from their frames (`TensorStream`) and sized (and widened from bfloat16).
enum Request {
    case hello(Hello)
    /// The specs, and the values of those of kind `tensor` by name (float32 frames, sized and checked).
    case register(Register, values: [String: Frame])
    case pull(names: [String])
    case push(names: [String], gradients: [Frame])
    case done
    case ping
    case heartbeat
}

/// A reply as the rules produce it; `ReplyEncoder` turns it into frames.
enum Reply {
    case welcome(Welcome)
    case registered(names: [String])
    case values(names: [String], droppedSteps: Int)
    case pushed(Pushed)
    case goodbye
    case pong
    case error(ErrorBody)
}

/// Turns a request's frames into a `Request`. Each worker names the same variables in every push and
/// pull: the last body it sent and the names it held, checked, are kept, so a body identical to the last
/// one is not parsed and checked again.
final class RequestDecoder {
    let server: String
    let limits: ServerLimits
    private var namesSeen: [UInt32: (body: [UInt8], names: [String], registered: Int)] = [:]

    init(server: String, limits: ServerLimits) {
        self.server = server
        self.limits = limits
    }

    /// - Parameters:
    ///   - dtype: how this worker's tensors cross the wire (from its hello).
    /// - Throws: `WireError` or `ErrorBody` naming what is wrong.
    func decode(_ m: Envelope, store: VariableStore, dtype: WireDType) throws -> Request {
        switch m.header.kind {
        case .hello: return .hello(try m.decode(Hello.self, limit: 1 << 16))
        case .register:
            let body = try m.decode(Register.self, limit: Body.defaultLimit)
            return .register(body, values: try registerValues(m, body, store: store))
        case .pull:
            let names = try checkedNames(m, store: store)
            guard m.tensors.isEmpty else { throw ErrorBody(code: .malformed, message: "ps \(server): a pull carries no tensors") }
            return .pull(names: names)
        case .push:
            let names = try checkedNames(m, store: store)
            return .push(names: names, gradients: try gradients(m, names: names, store: store, dtype: dtype))
        case .done:
            _ = try m.decode(Names.self, limit: 1 << 16)
            return .done
        case .ping: return .ping
        case .heartbeat: return .heartbeat
        default:
            throw ErrorBody(code: .protocolOrder, message: "ps \(server): \(m.header.kind) is a reply; servers take requests only")
        }
    }

    /// Forgets a worker's cached name list (it said hello again: a new process may name other variables).
    func forget(_ index: UInt32) { namesSeen[index] = nil }

    /// The names of a pull or push: bounded, distinct, and registered here.
    func checkedNames(_ m: Envelope, store: VariableStore) throws -> [String] {
        let index = m.header.workerID
        // Variables are never removed, so names checked against as many registered variables still pass.
        if let seen = namesSeen[index], seen.registered == store.count, m.body.withUnsafeBytes({ $0.elementsEqual(seen.body) }) {
            return seen.names
        }
        let names = try m.decode(Names.self, limit: 1 << 22).names
        guard names.count <= limits.maxNamesPerRequest else {
            throw ErrorBody(
                code: .limitExceeded,
                message: "ps \(server): a \(m.header.kind) names \(names.count) variables the limit of \(limits.maxNamesPerRequest) --max-names-per-request")
        }
        var seen: Set<String> = []
        for n in names {
            guard seen.insert(n).inserted else {
                throw ErrorBody(code: .malformed, message: "ps \(server): a \(m.header.kind) names \(n) twice")
            }
            guard store[n] != nil else {
                throw ErrorBody(
                    code: .unknownVariable,
                    message: "ps \(server): no variable named \(n) is registered here; register it first (this server holds \(store.count) variables)")
            }
        }
        namesSeen[index] = (m.body.bytes, names, store.count)
        return names
    }

    /// The values a register carries for its specs of kind `tensor`: float32 tensor frames in the specs'
    /// order (`TensorStream`: a frame each, packed, or in chunks). Sizes come from the specs' shapes,
    /// overflow-safe; the store checks the shapes against its limits before taking any value.
    func registerValues(_ m: Envelope, _ body: Register, store: VariableStore) throws -> [String: Frame] {
        let valued = body.valued
        guard valued.count <= limits.maxNamesPerRequest else {
            throw ErrorBody(
                code: .limitExceeded,
                message: "ps \(server): a register carries values for \(valued.count) variables, past the limit of \(limits.maxNamesPerRequest) --max-names-per-request")
        }
        // The store's own shape check (rank, overflow, --max-variable-elements), before any size is used.
        let sizes = try valued.map { try store.checkedCount($0.shape, of: $0.name) * 4 }
        let frames: [Frame]
        do { frames = try TensorStream.split(m.tensors, sizes: sizes) } catch let e as TensorStream.Error {
            throw ErrorBody(code: .wrongTensorSize, message: "ps \(server): a register's values: \(e)")
        }
        var out: [String: Frame] = [:]
        for (spec, frame) in zip(valued, frames) { out[spec.name] = frame }
        return out
    }

    /// A push's gradients, one per name, as float32, cut from the message's tensor frames (`TensorStream`:
    /// a frame each, one packed frame, or chunks of a tensor past a frame limit): views where a tensor lies in
    /// one frame, no copy. The frames must hold exactly the variables' bytes in the wire dtype.
    func gradients(_ m: Envelope, names: [String], store: VariableStore, dtype: WireDType) throws -> [Frame] {
        var sizes: [Int] = []
        sizes.reserveCapacity(names.count)
        for n in names {
            // Names were checked registered; sizes are of registered variables, each within --max-total-bytes.
            guard let v = store[n] else { throw ErrorBody(code: .unknownVariable, message: "ps \(server): no variable named \(n)") }
            sizes.append(v.value.count * dtype.size)
        }
        var frames: [Frame]
        do { frames = try TensorStream.split(m.tensors, sizes: sizes) } catch let e as TensorStream.Error {
            throw ErrorBody(code: .wrongTensorSize, message: "ps \(server): the gradients of a \(m.header.kind) as \(dtype.rawValue): \(e)")
        }
        if dtype == .bf16 {
            // Widened to the float32 masters' precision before anything else looks at it.
            for k in frames.indices {
                var wide = [Float](repeating: 0, count: frames[k].count / 2)
                frames[k].withUnsafeBytes { src in wide.withUnsafeMutableBufferPointer { BFloat16.decode(src, into: $0) } }
                frames[k] = Frame(floats: wide)
            }
        }
        return frames
    }
}

/// Turns `Reply`s into frames: headers, packing and bfloat16 of values, and the bodies that repeat (each
/// worker's values body, acknowledgements) encoded once.
final class ReplyEncoder {
    let incarnation: UInt64
    /// The body of each worker's last values reply (the names it carries), reused while the names are the same.
    private var valuesBodies: [UInt32: (names: [String], body: [UInt8])] = [:]

    init(incarnation: UInt64) { self.incarnation = incarnation }

    func header(_ kind: MessageKind, to request: Header) -> Header {
        Header(kind: kind, workerID: request.workerID, requestID: request.requestID, step: request.step, incarnation: incarnation)
    }

    /// Frames for `reply` to `request`. Values need the variables' arrays (shared with the frames:
    /// copy-on-write keeps them unchanged until sent), the worker's wire settings and the step to report.
    func encode(
        _ reply: Reply, to request: Header, store: VariableStore, wire: WorkerWire, step: UInt64
    ) -> [Frame] {
        switch reply {
        case .welcome(let w): return Envelope.frames(header(.welcome, to: request), w)
        case .registered(let names): return Envelope.frames(header(.registered, to: request), Names(names: names))
        case .pushed(let p): return Envelope.frames(header(.pushed, to: request), body: p.body)
        case .goodbye: return Envelope.frames(header(.goodbye, to: request), Names(names: []))
        case .pong: return Envelope.frames(header(.pong, to: request), Names(names: []))
        case .error(let e): return error(e, requestID: request.requestID, workerID: request.workerID)
        case .values(let names, let dropped):
            var h = header(.values, to: request)
            h.step = step
            let body: [UInt8]
            if dropped > 0 {
                body = Body.encode(ValuesBody(names: names, droppedSteps: dropped))
            } else if let last = valuesBodies[request.workerID], last.names == names {
                body = last.body
            } else {
                body = Body.encode(ValuesBody(names: names))
                valuesBodies[request.workerID] = (names, body)
            }
            return Envelope.frames(h, body: body, tensors: values(names, store: store, wire: wire))
        }
    }

    func error(_ e: ErrorBody, requestID: UInt64, workerID: UInt32) -> [Frame] {
        Envelope.frames(Header(kind: .error, workerID: workerID, requestID: requestID, incarnation: incarnation), e)
    }

    /// The values of `names`: packed in one frame when the worker packs and it fits its frame limit (one copy
    /// costs less than the system calls and wake-ups of a frame each), else a frame per tensor (shared).
    func values(_ names: [String], store: VariableStore, wire: WorkerWire) -> [Frame] {
        let values = names.compactMap { store[$0]?.value }
        let count = values.reduce(0) { $0 + $1.count }
        let bf16 = wire.dtype == .bf16
        if wire.packed, names.count > 1, count <= min(wire.maxFrameBytes, TensorStream.packLimit) / wire.dtype.size {
            // Reserved first, so the copy never regrows its buffer.
            if bf16 {
                var all = [UInt8]()
                all.reserveCapacity(2 * count)
                for v in values { all += BFloat16.bytes(v) }
                return [Frame(all)]
            }
            var all = [Float]()
            all.reserveCapacity(count)
            for v in values { all += v }
            return [Frame(floats: all)]
        }
        // A tensor past the worker's frame limit goes in chunks that fit (copies of its parts).
        return TensorStream.frames(
            owned: values.map { bf16 ? Frame(BFloat16.bytes($0)) : Frame(floats: $0) }, maxFrameBytes: wire.maxFrameBytes,
            elementSize: wire.dtype.size)
    }
}

/// How one worker's tensors cross the wire, from its hello.
struct WorkerWire {
    var dtype: WireDType = .float32
    /// Whether they may travel packed, one frame per message (`Hello.packed`).
    var packed = false
    /// The largest frame the worker takes: values are packed only up to it.
    var maxFrameBytes = Int.max
}
