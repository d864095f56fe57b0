/// A diagnostic TensorFlow never gave: `variable(...)` made new, unshared variables in a variable scope
/// that is reusing or was entered before. That is the seed's bug: inside
/// `variableScope("lstm_cell_decoder", reuse: t > 0)`, `variable(name: "weights_tilde")` makes
/// `lstm_cell_decoder_1/weights_tilde` at t = 1, a second weight set where one was meant.
///
/// One warning per duplicated name; later copies of the same name are appended to `created`.
public struct VariableWarning: Equatable, CustomStringConvertible, Sendable {
    /// The variable scope the calls were made in.
    public let scope: String
    /// The variable they probably meant to share: what `getVariable` would name it.
    public let intended: String
    /// The unshared variables `variable(...)` created, in order.
    public internal(set) var created: [String]
    /// Whether the scope was in reuse mode, and whether it had been entered before.
    public let reusing: Bool
    public let reentered: Bool

    public var description: String {
        let why = [reusing ? "reusing" : nil, reentered ? "entered again" : nil].compactMap { $0 }.joined(
            separator: " and ")
        let base = intended.split(separator: "/").last.map(String.init) ?? intended
        let list = created.count == 1 ? created[0] : "\(created.count) variables (\(created.joined(separator: ", ")))"
        return "warning: variable(...) created \(list) in variable scope '\(scope)' (\(why)); "
            + "variable(...) never shares, so this is a separate weight set, not \(intended). "
            + "To share one weight set, use getVariable(\"\(base)\", shape: ...) inside the scope."
    }
}
