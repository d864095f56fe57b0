/// Revocation: the server asks, for every request, whether the key its connection was admitted with is still
/// listed (after SIGHUP re-read the file). libzmq cannot close one peer of a ROUTER socket, so a revoked
/// connection stays open, but nothing it sends is served.
extension Admission {
    /// Whether `key` (Z85) is in the current list.
    public func stillAdmits(_ key: String) -> Bool { admits(key) }
}
