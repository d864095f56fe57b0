import Foundation
import Logging
import Optimizers
import ParameterServer
import Transport
import Wire

/// A libFuzzer target for the protocol decoder and the server's rules: every input is read as a script of
/// messages from a few peers and clock ticks (see `FuzzScript`), fed through `Envelope(frames:)`, every
/// body decoder, and one long-lived `ServerCore`, so sequences (hello, register, push, pull, done) that
/// span inputs reach deep states. The core is recreated every `FuzzState.inputsPerCore` inputs, with the
/// next of a few configurations, so its state stays bounded and every mode is exercised.
///
/// After each input the target checks what the rules promise: every reply it emits parses as a
/// well-formed message, every variable value is finite (refused gradients never poison state), and the
/// checkpoint snapshot can be taken. A broken promise traps, which libFuzzer reports as a crash.
///
/// Build (Swift 6.3, Linux): `swift build -c release --product FuzzServer -Xswiftc -sanitize=fuzzer
/// --scratch-path .build/fuzz`; `scripts/fuzz.sh` does it and runs the corpus in `Tests/Fuzz/corpus`.
/// A crash that depends on state left by earlier inputs reproduces by running the crashing input after
/// the same corpus; most reproduce alone (`.build/fuzz/release/FuzzServer crash-<sha>`).
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    FuzzState.shared.run(UnsafeBufferPointer(start: data, count: size))
    return 0
}

/// The input format: a sequence of records until the bytes run out.
///
/// - `0xFF d`: advance the clock by `d` tenths of a second and tick.
/// - `0xFE`: take a checkpoint snapshot (reads every variable and worker record).
/// - `0xFD`: restart the server from its own snapshot, with a new incarnation (a restore from checkpoint).
/// - any other byte `c`: a message from peer `c & 3` made of `(c >> 2) & 7` frames, each a little-endian
///   `UInt16` length followed by that many bytes (clamped to what is left). Peer 3 carries a CURVE key.
public enum FuzzScript {
    public static let tick: UInt8 = 0xFF
    public static let snapshot: UInt8 = 0xFE
    public static let restart: UInt8 = 0xFD

    /// The record byte for a message of `frames` frames from `peer`.
    public static func messageByte(peer: Int, frames: Int) -> UInt8 {
        precondition((0..<4).contains(peer) && (0..<8).contains(frames), "peer 0..<4, frames 0..<8")
        return UInt8(peer | frames << 2)
    }

    /// One message as a record (frames longer than 65535 bytes are cut).
    public static func encode(peer: Int, frames: [[UInt8]]) -> [UInt8] {
        var out = [messageByte(peer: peer, frames: min(frames.count, 7))]
        for f in frames.prefix(7) {
            let n = min(f.count, Int(UInt16.max))
            out += [UInt8(n & 0xFF), UInt8(n >> 8)]
            out += f.prefix(n)
        }
        return out
    }
}

/// The fuzzer's long-lived state: one `ServerCore`, its clock, and how many inputs it has seen.
final class FuzzState {
    nonisolated(unsafe) static let shared = FuzzState()
    static let inputsPerCore = 500

    var core: ServerCore
    var now = 1000.0
    var inputs = 0
    var generation = 0
    var restarts = 0
    let peers: [Peer] = (0..<4).map { i in
        Peer(id: [0x66, 0x7A, UInt8(i)], key: i == 3 ? "curve-key-of-peer-3" : nil, address: "10.0.0.\(i)")
    }

    init() {
        core = Self.makeCore(generation: 0, now: now)
    }

    /// A small server: limits low enough that a hostile register hits them quickly, and the mode varied
    /// per generation (async, sync with a backup worker, async with staleness, a fixed worker count).
    static func makeCore(generation: Int, now: Double, restored: ServerState? = nil, restarts: Int = 0) -> ServerCore {
        var config = ServerConfig(name: "fuzz", optimizer: OptimizerConfig(kind: .adam, learningRate: 0.01))
        switch generation % 4 {
        case 0: config.mode = .async
        case 1:
            config.mode = .sync
            config.backupWorkers = 1
        case 2:
            config.mode = .async
            config.staleness = 1
            config.clipNorm = 1
        default:
            config.mode = .sync
            config.numWorkers = 2
            config.optimizer = OptimizerConfig(kind: .momentum, learningRate: 0.5, momentum: 0.9)
        }
        config.workerTimeout = 5
        config.takeoverAfter = 1
        config.checkpointEvery = 7
        config.checkpointSeconds = 3
        config.limits.maxVariableElements = 4096
        config.limits.maxTotalBytes = 1 << 20
        config.limits.maxVariables = 16
        config.limits.maxNamesPerRequest = 16
        config.limits.maxWorkers = 4
        config.limits.maxNameLength = 64
        var logger = Logger(label: "fuzz")
        logger.logLevel = .critical
        return ServerCore(
            config: config, incarnation: 0xF0F0 &+ UInt64(generation) << 32 &+ UInt64(restarts), restored: restored,
            now: now, logger: logger)
    }

    func run(_ bytes: UnsafeBufferPointer<UInt8>) {
        inputs += 1
        if inputs % Self.inputsPerCore == 0 {
            generation += 1
            core = Self.makeCore(generation: generation, now: now)
        }
        var i = 0
        while i < bytes.count {
            let c = bytes[i]
            i += 1
            switch c {
            case FuzzScript.tick:
                let d = i < bytes.count ? Double(bytes[i]) / 10 : 1
                i += 1
                now += d
                check(core.tick(now: now))
            case FuzzScript.snapshot:
                checkSnapshot()
            case FuzzScript.restart:
                checkSnapshot()
                restarts += 1
                core = Self.makeCore(generation: generation, now: now, restored: core.snapshot(), restarts: restarts)
            default:
                var frames: [Frame] = []
                for _ in 0..<Int((c >> 2) & 7) {
                    guard i + 2 <= bytes.count else {
                        i = bytes.count
                        break
                    }
                    let n = min(Int(bytes[i]) | Int(bytes[i + 1]) << 8, bytes.count - i - 2)
                    i += 2
                    frames.append(Frame(Array(bytes[i..<(i + n)])))
                    i += n
                }
                decodeEverything(frames)
                check(core.receive(frames, from: peers[Int(c & 3)], now: now))
            }
        }
        checkVariables()
    }

    /// The decoder alone, and every body type on whatever body came: none of it may trap.
    func decodeEverything(_ frames: [Frame]) {
        guard let e = try? Envelope(frames: frames[...]) else { return }
        _ = try? e.decode(Hello.self)
        _ = try? e.decode(Register.self)
        _ = try? e.decode(Names.self)
        _ = try? e.decode(Welcome.self)
        _ = try? e.decode(Pushed.self)
        _ = try? e.decode(ErrorBody.self)
        if let r = try? e.decode(Register.self) {
            for v in r.variables { _ = v.count }
        }
    }

    /// Every reply the rules emit is a well-formed message with a body its kind's reader accepts.
    func check(_ effects: [Effect]) {
        for effect in effects {
            guard case .send(let frames, _) = effect else { continue }
            guard let e = try? Envelope(frames: frames[...]) else {
                fatalError("the server emitted a reply that does not parse: \(frames.map(\.count)) bytes per frame")
            }
            let ok: Bool
            switch e.header.kind {
            case .welcome: ok = (try? e.decode(Welcome.self)) != nil
            case .pushed: ok = (try? e.decode(Pushed.self)) != nil
            case .error: ok = (try? e.decode(ErrorBody.self)) != nil
            case .values, .registered, .goodbye, .pong: ok = (try? e.decode(Names.self)) != nil
            default: ok = false
            }
            if !ok { fatalError("the server emitted a \(e.header.kind) reply whose body does not decode") }
            if e.header.kind == .values, let names = try? e.decode(Names.self).names {
                // A frame per variable, or (to a packing worker) one frame for several: 4 or 2 bytes per value.
                let counts = names.map { core.value(of: $0)?.count ?? -1 }
                let fits = { (bytes: Int, values: Int) in bytes == 4 * values || bytes == 2 * values }
                let perTensor = names.count == e.tensors.count && zip(e.tensors, counts).allSatisfy { fits($0.count, $1) }
                let packed = names.count > 1 && e.tensors.count == 1 && fits(e.tensors.first!.count, counts.reduce(0, +))
                if counts.contains(-1) || !(perTensor || packed) {
                    fatalError(
                        "a values reply names \(names.count) variables of \(counts) values but carries frames of \(e.tensors.map(\.count)) bytes")
                }
            }
        }
    }

    /// Refused or hostile gradients must never leave a variable non-finite.
    func checkVariables() {
        for name in core.variableNames {
            guard let v = core.value(of: name) else { fatalError("variable \(name) is listed but not held") }
            for x in v where !x.isFinite { fatalError("variable \(name) holds \(x) after a refused or hostile push") }
        }
    }

    func checkSnapshot() {
        let s = core.snapshot()
        for v in s.variables where v.value.count != v.first.count || v.value.count != v.second.count {
            fatalError(
                "variable \(v.name) has \(v.value.count) values but slots of \(v.first.count) and \(v.second.count)")
        }
    }
}

#if FUZZING
    /// libFuzzer's entry by name, in the fuzz build only (one fuzz binary per target; a plain build links every
    /// target into one test bundle, where three of these would clash).
    @_cdecl("LLVMFuzzerTestOneInput")
    func libFuzzerEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { fuzzTestOneInput(data, size) }
#endif
