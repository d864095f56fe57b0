import Foundation

/// Who sent a request, as the transport knows it. It lives with the protocol so that the server's rules can
/// name peers without importing any transport.
///
/// `id` names the connection (a ZeroMQ routing id); `key` is the client's CURVE public key (Z85) when an
/// admission handler let it in, so identity can be bound to a key rather than to a connection alone.
public struct Peer: Hashable, Sendable, CustomStringConvertible {
    public let id: [UInt8]
    public let key: String?
    public let address: String?

    public init(id: [UInt8], key: String? = nil, address: String? = nil) {
        self.id = id
        self.key = key
        self.address = address
    }

    public var description: String {
        var s = "connection " + id.prefix(12).map { String(format: "%02x", $0) }.joined()
        if let address { s += " from \(address)" }
        if let key { s += " key \(key)" }
        return s
    }
}

