import Foundation
import ZeroMQ

/// The CURVE client keys a server admits, read from an `authorized_keys`-style file: one Z85 public key
/// per line (words after it are a comment), lines starting with `#` are comments, blank lines are
/// ignored; `\n` or `\r\n` line ends, with or without a UTF-8 byte-order mark. A file with no key is an
/// error. Re-read on request (SIGHUP).
public final class Admission: @unchecked Sendable {
    public let path: String
    private let lock = NSLock()
    private var keys: Set<String> = []
    private var refusals: [Refusal] = []
    public private(set) var refusedTotal = 0

    /// - Throws: `AdmissionError` naming the file and the line at fault.
    public init(path: String) throws {
        self.path = path
        try reload()
    }

    /// Reads the file again; on error the keys in force stay as they were.
    public func reload() throws {
        let parsed = try Admission.parse(path: path)
        lock.lock()
        keys = parsed
        lock.unlock()
    }

    public var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return keys.count
    }

    public static func parse(path: String) throws -> Set<String> {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw AdmissionError(path: path, line: nil, reason: "does not exist")
        }
        guard !isDirectory.boolValue else { throw AdmissionError(path: path, line: nil, reason: "is a directory") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AdmissionError(path: path, line: nil, reason: "cannot be read")
        }
        guard var text = String(data: data, encoding: .utf8) else {
            throw AdmissionError(path: path, line: nil, reason: "is not UTF-8")
        }
        // Files saved on Windows: a byte-order mark, and "\r\n" (one Character in Swift, so splitting on
        // "\n" alone would never split it); `isNewline` covers "\n", "\r\n" and a lone "\r".
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        var out: Set<String> = []
        for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            // Z85 uses `#`, so a comment is a line whose first word is not a key and starts with `#`;
            // words after the key are a comment too, as in ssh's authorized_keys.
            guard let first = raw.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).first else { continue }
            let word = String(first)
            let key = word.utf8.count == 40 ? try? CurveKeyPair.decode(word) : nil
            if key == nil && word.hasPrefix("#") { continue }
            guard let key else {
                throw AdmissionError(path: path, line: i + 1, reason: "is not a 40-character Z85 CURVE public key")
            }
            out.insert(CurveKeyPair.z85(key))
        }
        // An empty list would refuse every worker: that is a mistake in the file, not a policy.
        guard !out.isEmpty else {
            throw AdmissionError(
                path: path, line: nil,
                reason: "lists no keys (only blank or comment lines): every worker would be refused; add the workers' .public keys, one per line")
        }
        return out
    }

    func admits(_ key: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return keys.contains(key)
    }

    func refused(key: String, address: String) {
        lock.lock()
        defer { lock.unlock() }
        refusedTotal += 1
        if refusals.count < 1000 { refusals.append(Refusal(key: key, address: address)) }
    }

    func drainRefusals() -> [Refusal] {
        lock.lock()
        defer { lock.unlock() }
        let r = refusals
        refusals = []
        return r
    }
}

public struct AdmissionError: Error, CustomStringConvertible {
    public let path: String
    public let line: Int?
    public let reason: String
    public var description: String {
        if let line { return "--curve-authorized-keys \(path): line \(line) \(reason)" }
        return "--curve-authorized-keys \(path) \(reason)"
    }
}

/// ZeroMQ's authentication protocol (ZAP, RFC 27) on `inproc://zeromq.zap.01`: libzmq asks it about every
/// CURVE handshake, and it answers 200 for admitted keys and 400 for the rest.
final class ZAPHandler: @unchecked Sendable {
    let admission: Admission
    private let lock = NSLock()
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)

    init(context: Context, admission: Admission) throws {
        self.admission = admission
        let socket = try Socket(context, .rep)
        try socket.bind("inproc://zeromq.zap.01")
        // The socket moves to the handler's thread and is used only there from now on.
        nonisolated(unsafe) let owned = socket
        let thread = Thread { [self] in
            self.serve(owned)
            owned.close()
            self.finished.signal()
        }
        thread.name = "zap"
        thread.start()
    }

    private var shouldStop: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopping
    }

    private func serve(_ socket: Socket) {
        while !shouldStop {
            guard (try? socket.waitReadable(milliseconds: 100)) == true,
                let request = try? socket.receive(dontWait: true)
            else { continue }
            let frames = request.map(\.bytes)
            // version, request id, domain, address, identity, mechanism, credentials...
            guard frames.count >= 6 else { continue }
            let version = frames[0]
            let requestID = frames[1]
            let address = String(decoding: frames[3], as: UTF8.self)
            let mechanism = String(decoding: frames[5], as: UTF8.self)
            var status = "400"
            var text = "not admitted"
            var user = ""
            if mechanism == "CURVE", frames.count >= 7, frames[6].count == 32 {
                let key = CurveKeyPair.z85(frames[6])
                if admission.admits(key) {
                    (status, text, user) = ("200", "OK", key)
                } else {
                    admission.refused(key: key, address: address)
                }
            } else {
                admission.refused(key: "(\(mechanism), no CURVE key)", address: address)
            }
            try? socket.send([version, requestID, Array(status.utf8), Array(text.utf8), Array(user.utf8), []])
        }
    }

    func stop() {
        lock.lock()
        stopping = true
        lock.unlock()
        _ = finished.wait(timeout: .now() + 2)
    }
}
