import Foundation

/// Whether `address` is a loopback address or name (plaintext there reaches only this machine).
public func isLoopback(_ address: String) -> Bool {
    address == "localhost" || address.hasPrefix("127.") || address == "::1" || address == "[::1]"
}

/// Whether `address` is something a server can bind: an IPv4 address, `*`, `localhost`, or an IPv6 address.
public func isBindableAddress(_ address: String) -> Bool {
    if address == "*" || address == "localhost" { return true }
    var v4 = in_addr()
    if inet_pton(AF_INET, address, &v4) == 1 { return true }
    var v6 = in6_addr()
    let bare = address.hasPrefix("[") && address.hasSuffix("]") ? String(address.dropFirst().dropLast()) : address
    return inet_pton(AF_INET6, bare, &v6) == 1
}

/// Reads a small text file named by a flag, with a message that says what is wrong with it.
/// - Throws: `FileProblem` naming the flag and the file.
public func readSmallTextFile(_ path: String, flag: String, hint: String = "", limit: Int = 1 << 20) throws -> String {
    var isDirectory: ObjCBool = false
    let suffix = hint.isEmpty ? "" : "; \(hint)"
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw FileProblem(description: "\(flag) \(path) does not exist\(suffix)")
    }
    guard !isDirectory.boolValue else { throw FileProblem(description: "\(flag) \(path) is a directory, not a file") }
    guard let data = FileManager.default.contents(atPath: path) else {
        throw FileProblem(description: "\(flag) \(path) cannot be read (permissions?)")
    }
    guard data.count <= limit else { throw FileProblem(description: "\(flag) \(path) is larger than \(limit) bytes") }
    guard let text = String(data: data, encoding: .utf8) else { throw FileProblem(description: "\(flag) \(path) is not UTF-8") }
    return text
}

public struct FileProblem: Error, CustomStringConvertible {
    public let description: String
}

/// What is wrong with `--metrics-port` and `--metrics-bind`, or nil: the port is 0...65535 and the address
/// IPv4 (the HTTP endpoint binds IPv4 only).
public func metricsOptionsProblem(port: Int?, bind: String?) -> String? {
    if let port, !(0...65535).contains(port) { return "--metrics-port must be in 0...65535, got \(port)" }
    if let bind {
        var a = in_addr()
        guard inet_pton(AF_INET, bind, &a) == 1 || bind == "localhost" else {
            return "--metrics-bind: cannot bind \(bind): not an IPv4 address"
        }
    }
    return nil
}
