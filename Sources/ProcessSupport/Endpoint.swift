import Foundation

/// A server's address, `host:port`, as `--ps` and `TF_CONFIG`'s cluster lists give it, parsed strictly:
/// a port is 1 to 5 ASCII digits in 1...65535 (not `+5556`, which `Int` would take and libzmq then
/// refuses), a host is a name or an IPv4 address.
///
/// IPv6 (`[::1]:5556`) is refused here with a message saying so: the transport does not set `ZMQ_IPV6`
/// on its sockets, so such an address could never be reached (the worker would retry it until
/// `--recovery-timeout` and exit 138).
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public var description: String { "\(host):\(port)" }

    /// The machine and port this names, for telling two entries apart: the host in lower case, with
    /// `localhost` as `127.0.0.1`. No other name is resolved.
    public var identity: String {
        let h = host.lowercased()
        return "\(h == "localhost" ? "127.0.0.1" : h):\(port)"
    }

    /// Parses `host:port`.
    /// - Throws: `EndpointError` saying what is wrong with `text`.
    public init(parsing text: String) throws {
        func bad(_ reason: String) -> EndpointError { EndpointError(text: text, reason: reason) }
        if let problem = ipv6Problem(text) { throw bad(problem) }
        guard let colon = text.lastIndex(of: ":") else { throw bad("has no port: write host:port") }
        let host = String(text[..<colon])
        let digits = text[text.index(after: colon)...]
        guard !host.isEmpty else { throw bad("has no host: write host:port") }
        guard !digits.isEmpty, digits.count <= 5, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
            let port = Int(digits), (1...65535).contains(port)
        else { throw bad("has port '\(digits.prefix(20))': a port is a whole number in 1...65535, digits only") }
        guard host.utf8.count <= 253,
            host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_") })
        else {
            throw bad(
                "has host '\(host.prefix(40))': a host is a name or an IPv4 address (letters, digits, '-', '.', '_')")
        }
        self.host = host
        self.port = port
    }

    /// Parses every entry of a list and refuses one server named twice (`localhost` and `127.0.0.1` are
    /// the same): two connections to one server would place variables on it twice.
    /// - Parameter source: how the list is named in errors (`--ps`, `TF_CONFIG: cluster.ps`).
    /// - Throws: `EndpointError` naming the source, the entry and what is wrong.
    public static func parseList(_ items: [String], source: String) throws -> [Endpoint] {
        var seen: [String: Int] = [:]
        var out: [Endpoint] = []
        for (i, item) in items.enumerated() {
            let e: Endpoint
            do { e = try Endpoint(parsing: item) } catch let error as EndpointError {
                throw EndpointError(text: item, reason: error.reason, source: "\(source)[\(i)]")
            }
            if let first = seen[e.identity] {
                throw EndpointError(
                    text: item,
                    reason: "is the same server as \(source)[\(first)] ('\(items[first])'): list each server once",
                    source: "\(source)[\(i)]")
            }
            seen[e.identity] = i
            out.append(e)
        }
        return out
    }
}

/// What is wrong with an address that is IPv6 (bracketed, or bare with several colons), or nil.
public func ipv6Problem(_ address: String) -> String? {
    let bracketed = address.hasPrefix("[")
    let colons = address.filter { $0 == ":" }.count
    guard bracketed || colons > 1 else { return nil }
    return
        "is an IPv6 address, which is not supported yet (the ZeroMQ sockets are not opened with ZMQ_IPV6); use an IPv4 address or a host name that resolves to one"
}

/// An address that cannot be used, naming it, where it came from, and why.
public struct EndpointError: Error, CustomStringConvertible, Equatable {
    public let text: String
    public let reason: String
    /// The option or field it came from (`--ps[1]`, `TF_CONFIG: cluster.ps[0]`), when known.
    public var source: String?

    public init(text: String, reason: String, source: String? = nil) {
        self.text = text
        self.reason = reason
        self.source = source
    }

    public var description: String {
        "\(source.map { "\($0): " } ?? "")'\(text.prefix(80))' \(reason)"
    }
}
