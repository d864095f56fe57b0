import Foundation
import Logging

/// How log lines look: swift-log's plain text, or one JSON object per line for log collectors.
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json
}

/// Sets up logging once per process.
public func bootstrapLogging(_ format: LogFormat, level: Logger.Level = .info) {
    switch format {
    case .text:
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    case .json:
        LoggingSystem.bootstrap { label in
            var h = JSONLogHandler(label: label)
            h.logLevel = level
            return h
        }
    }
}

/// A swift-log handler that writes one JSON object per line to standard error:
/// `{"time": ..., "level": ..., "label": ..., "message": ..., <metadata>...}`.
public struct JSONLogHandler: LogHandler {
    public let label: String
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private static let lock = NSLock()

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var object: [String: String] = [:]
        for (k, v) in metadata { object[k] = "\(v)" }
        for (k, v) in event.metadata ?? [:] { object[k] = "\(v)" }
        object["time"] = ISO8601DateFormatter().string(from: Date())
        object["level"] = event.level.rawValue
        object["label"] = label
        object["message"] = "\(event.message)"
        guard var data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        data.append(0x0A)
        JSONLogHandler.lock.lock()
        FileHandle.standardError.write(data)
        JSONLogHandler.lock.unlock()
    }
}
