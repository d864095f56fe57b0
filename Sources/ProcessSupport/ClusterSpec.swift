import Foundation

/// TensorFlow's `TF_CONFIG`: the cluster's addresses by task type and this process's task, as Kubeflow's
/// TFJob and TensorFlow's own launchers set it.
///
/// `{"cluster": {"chief": [...], "ps": ["host:port", ...], "worker": [...], "evaluator": [...]},
///   "task": {"type": "ps"|"worker"|"chief"|"evaluator", "index": i}}`; other keys (`rpc_layer`,
/// `environment`) are ignored.
public struct ClusterSpec: Equatable, Sendable {
    public enum TaskType: String, Sendable, CaseIterable {
        case chief, ps, worker, evaluator
    }

    public var chief: [String]
    public var ps: [String]
    public var worker: [String]
    public var evaluator: [String]
    public var taskType: TaskType
    public var taskIndex: Int

    /// Training workers: the chief (if any) counts as worker 0, then the workers.
    public var numWorkers: Int { chief.count + worker.count }

    /// This task's index among training workers (chief 0, worker i → i + chief count); nil for ps/evaluator.
    public var workerIndex: Int? {
        switch taskType {
        case .chief: return taskIndex
        case .worker: return chief.count + taskIndex
        case .ps, .evaluator: return nil
        }
    }

    /// This task's own address.
    public var ownAddress: String {
        switch taskType {
        case .chief: return chief[taskIndex]
        case .ps: return ps[taskIndex]
        case .worker: return worker[taskIndex]
        case .evaluator: return evaluator[taskIndex]
        }
    }

    /// Parses `TF_CONFIG` text.
    /// - Throws: `ClusterSpecError` naming the field at fault.
    public init(json text: String) throws {
        guard let data = text.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        else { throw ClusterSpecError(field: nil, reason: "is not JSON") }
        guard let root = object as? [String: Any] else { throw ClusterSpecError(field: nil, reason: "is not a JSON object") }
        guard let task = root["task"] else { throw ClusterSpecError(field: "task", reason: "is missing") }
        guard let taskObject = task as? [String: Any] else { throw ClusterSpecError(field: "task", reason: "is not an object") }
        guard let typeText = taskObject["type"] as? String else {
            throw ClusterSpecError(field: "task.type", reason: "is missing or not a string")
        }
        guard let type = TaskType(rawValue: typeText) else {
            throw ClusterSpecError(
                field: "task.type", reason: "is '\(typeText)'; expected one of \(TaskType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        // JSONDecoder, not the NSNumber above: it refuses `true`, `1.5` and `"1"`, which NSNumber would turn
        // into 1 (or let through to a trap).
        struct Task: Decodable { var index: Int }
        struct Root: Decodable { var task: Task }
        guard taskObject["index"] != nil,
            let index = try? JSONDecoder().decode(Root.self, from: data).task.index, index >= 0
        else {
            throw ClusterSpecError(
                field: "task.index",
                reason: taskObject["index"] == nil
                    ? "is missing" : "is not a non-negative JSON integer (write 0, 1, ...; not true, 1.5 or \"1\")")
        }
        let cluster = root["cluster"] as? [String: Any] ?? [:]
        if root["cluster"] != nil && !(root["cluster"] is [String: Any]) {
            throw ClusterSpecError(field: "cluster", reason: "is not an object")
        }
        func list(_ key: String) throws -> [String] {
            guard let value = cluster[key] else { return [] }
            guard let items = value as? [Any] else { throw ClusterSpecError(field: "cluster.\(key)", reason: "is not a list") }
            return try items.enumerated().map { i, item in
                guard let s = item as? String else {
                    throw ClusterSpecError(field: "cluster.\(key)[\(i)]", reason: "is \(item), not host:port")
                }
                do { _ = try Endpoint(parsing: s) } catch let e as EndpointError {
                    throw ClusterSpecError(field: "cluster.\(key)[\(i)]", reason: "'\(s.prefix(80))' \(e.reason)")
                }
                return s
            }
        }
        chief = try list("chief")
        ps = try list("ps")
        worker = try list("worker")
        evaluator = try list("evaluator")
        // One address, one task: a server listed twice would be connected to twice and hold its share twice.
        var seen: [String: String] = [:]
        for (key, items) in [("chief", chief), ("ps", ps), ("worker", worker), ("evaluator", evaluator)] {
            for (i, item) in items.enumerated() {
                let identity = (try Endpoint(parsing: item)).identity
                let field = "cluster.\(key)[\(i)]"
                if let first = seen[identity] {
                    throw ClusterSpecError(
                        field: field, reason: "is '\(item)', the same address as \(first); list each task once")
                }
                seen[identity] = field
            }
        }
        taskType = type
        taskIndex = index
        let members: [String]
        switch type {
        case .chief: members = chief
        case .ps: members = ps
        case .worker: members = worker
        case .evaluator: members = evaluator
        }
        guard index < members.count else {
            throw ClusterSpecError(
                field: "task.index", reason: "is \(index), but cluster.\(type.rawValue) has \(members.count) entries")
        }
        if chief.count > 1 { throw ClusterSpecError(field: "cluster.chief", reason: "has \(chief.count) entries; at most one") }
    }

    /// `TF_CONFIG` from the environment: nil when unset or empty.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> ClusterSpec? {
        guard let text = env["TF_CONFIG"], !text.trimmingCharacters(in: .whitespaces).isEmpty else { return nil }
        return try ClusterSpec(json: text)
    }

    /// Whether `s` is `host:port` with a non-empty host and a port in 1...65535 (see `Endpoint`).
    public static func isHostPort(_ s: String) -> Bool {
        (try? Endpoint(parsing: s)) != nil
    }

    /// The port of a `host:port`.
    public static func port(of s: String) -> Int? {
        guard let colon = s.lastIndex(of: ":") else { return nil }
        return Int(s[s.index(after: colon)...])
    }
}

/// A malformed `TF_CONFIG`, naming the field.
public struct ClusterSpecError: Error, CustomStringConvertible, Equatable {
    public let field: String?
    public let reason: String
    public var description: String {
        if let field { return "TF_CONFIG: \(field) \(reason)" }
        return "TF_CONFIG \(reason)"
    }
}
