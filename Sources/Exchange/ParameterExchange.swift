import Optimizers
import VariableScopes

/// Where a worker's gradients go and its variables come from: this process (`LocalExchange`) or
/// parameter servers (`WorkerRuntime`'s `RemoteExchange`). It lives apart from both so that the trainer
/// and the network code need not import each other.
public protocol ParameterExchange: AnyObject {
    /// Makes the local variable values current before the first step (a pull, for servers).
    /// - Returns: the steps already done by this worker's task index (a restarted worker resumes after
    ///   them); 0 for a new run.
    func start(variables: [Variable]) throws -> Int
    /// Called after step `step`'s gradients fill the variables' gradient buffers: applies or pushes
    /// them and leaves the variable values ready for the next step.
    func exchange(step: Int, variables: [Variable]) throws
    /// Called once when this worker is done (tells the servers, for remote exchanges).
    func finish(variables: [Variable]) throws
}

/// Training in this process: the optimizer code the parameter server runs, applied in place.
public final class LocalExchange: ParameterExchange {
    public let optimizer: OptimizerConfig
    private var slots: [ObjectIdentifier: OptimizerSlots] = [:]

    public init(optimizer: OptimizerConfig) { self.optimizer = optimizer }

    public func start(variables: [Variable]) throws -> Int {
        for v in variables { slots[ObjectIdentifier(v)] = OptimizerSlots(count: v.count) }
        return 0
    }

    public func exchange(step: Int, variables: [Variable]) throws {
        for v in variables {
            slots[ObjectIdentifier(v)]!.apply(optimizer, value: v.value, gradient: UnsafeBufferPointer(v.gradient))
        }
    }

    public func finish(variables: [Variable]) throws {}
}
