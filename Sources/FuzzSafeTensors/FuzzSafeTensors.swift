import Foundation
import Logging
import Optimizers
import ParameterServer
import SafeTensors
import Transport
import Wire

/// A libFuzzer target for the file readers: every input is read as a safetensors file
/// (`SafeTensors.decodeFile`) and as a parameter-server checkpoint (`CheckpointStore.decodeState`, every
/// metadata number checked against small limits), and a checkpoint that is accepted is restored into a
/// `ServerCore`, which then takes a worker's hello and a pull, as a restarted server would.
///
/// Promises checked (a broken one traps, which libFuzzer reports as a crash): reading never traps; what
/// is accepted is consistent (each tensor holds as many values as its shape says, every value finite);
/// what is accepted survives a write and a read unchanged; and a restored server answers with replies
/// that parse.
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    _ = FileChecks.run(Data(bytes: data, count: size))
    return 0
}

/// The checks of one input; `run` says how far the input got.
enum FileChecks {
    enum Outcome: String {
        case refused = "refused"
        case file = "read as safetensors only"
        case checkpoint = "restored as a checkpoint"
    }

    /// Small limits, so that inputs reach "beyond the limit" as well as "within it".
    static let limits: ServerLimits = {
        var l = ServerLimits()
        l.maxVariables = 64
        l.maxVariableElements = 1 << 16
        l.maxTotalBytes = 4 << 20
        l.maxWorkers = 16
        return l
    }()

    static func run(_ bytes: Data) -> Outcome {
        guard let file = try? SafeTensors.decodeFile(bytes, path: "input") else {
            // A checkpoint is a safetensors file first: the checkpoint reader must refuse it too.
            if (try? CheckpointStore.decodeState(bytes, path: "input", limits: limits)) != nil {
                fatalError("a file the safetensors reader refuses was restored as a checkpoint")
            }
            return .refused
        }
        checkFile(file)
        guard let (state, _) = try? CheckpointStore.decodeState(bytes, path: "input", limits: limits) else {
            return .file
        }
        checkState(state)
        return .checkpoint
    }

    /// What the safetensors reader accepted is consistent and survives a write and a read.
    static func checkFile(_ file: SafeTensors.File) {
        var tensors: [(name: String, shape: [Int], scalars: [Float])] = []
        for (name, e) in file.tensors.sorted(by: { $0.key < $1.key }) {
            var count = 1
            for d in e.shape {
                guard d >= 0 else { fatalError("tensor \(name) was accepted with shape \(e.shape)") }
                count = count.multipliedReportingOverflow(by: d).partialValue
            }
            guard count == e.scalars.count else {
                fatalError("tensor \(name) has shape \(e.shape) but \(e.scalars.count) values")
            }
            guard e.scalars.allSatisfy(\.isFinite) else {
                fatalError("tensor \(name) was accepted holding non-finite values")
            }
            tensors.append((name, e.shape, e.scalars))
        }
        // Written again (float32, a fresh checksum), it reads back the same.
        let again = SafeTensors.encode(tensors, metadata: file.metadata, checksum: true)
        guard let back = try? SafeTensors.decodeFile(again, path: "again"), back.checksumVerified else {
            fatalError("a file that was read cannot be written and read again")
        }
        guard back.tensors.count == file.tensors.count,
            back.tensors.allSatisfy({
                file.tensors[$0.key]?.scalars == $0.value.scalars && file.tensors[$0.key]?.shape == $0.value.shape
            })
        else { fatalError("a file written again reads back different tensors") }
        var metadata = back.metadata
        metadata[SafeTensors.Checksum.key] = file.metadata[SafeTensors.Checksum.key]
        guard metadata == file.metadata || file.metadata[SafeTensors.Checksum.key] == nil else {
            fatalError("a file written again reads back different metadata")
        }
    }

    static let config: ServerConfig = {
        var c = ServerConfig(name: "fuzz", mode: .async, optimizer: OptimizerConfig(kind: .adam, learningRate: 0.01))
        c.limits = limits
        c.checkpointSeconds = nil
        return c
    }()

    /// A restored state is within the limits, round-trips through a checkpoint, and a server restored from
    /// it answers a hello and a pull with replies that parse.
    static func checkState(_ state: ServerState) {
        guard state.updates <= CheckpointStore.maxCount, state.syncStep <= CheckpointStore.maxCount,
            state.variables.count <= limits.maxVariables,
            state.workers.allSatisfy({ $0.lastPushedStep <= CheckpointStore.maxCount })
        else { fatalError("a checkpoint was restored with numbers past its limits") }
        let again = CheckpointStore.encode(state, config: config, sequence: 1)
        guard let (back, verified) = try? CheckpointStore.decodeState(again, path: "again", limits: limits), verified,
            back == state
        else { fatalError("a restored checkpoint, written again, does not read back the same") }
        let core = ServerCore(config: config, incarnation: 7, restored: state, now: 0, logger: logger)
        let n = state.numWorkers ?? 1
        let index = UInt32(state.workers.first?.index ?? 0)
        var effects = core.receive(
            Envelope.frames(
                Header(kind: .hello, workerID: index, requestID: 1, incarnation: 99),
                Hello(workerName: "fuzz", numWorkers: n)),
            from: Peer(id: [1], key: nil), now: 100)
        let names = Array(state.variables.prefix(4).map(\.name))
        effects += core.receive(
            Envelope.frames(
                Header(kind: .pull, workerID: index, requestID: 2, step: 1, incarnation: 99), Names(names: names)),
            from: Peer(id: [1], key: nil), now: 100)
        effects += core.tick(now: 200)
        for case .send(let frames, _) in effects {
            guard (try? Envelope(frames: frames[...])) != nil else {
                fatalError("a restored server sent a reply that does not parse")
            }
        }
        _ = core.snapshot()
    }

    static let logger: Logger = {
        var l = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
        l.logLevel = .critical
        return l
    }()
}

#if FUZZING
    /// libFuzzer's entry by name, in the fuzz build only (one fuzz binary per target; a plain build links every
    /// target into one test bundle, where three of these would clash).
    @_cdecl("LLVMFuzzerTestOneInput")
    func libFuzzerEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { fuzzTestOneInput(data, size) }
#endif
