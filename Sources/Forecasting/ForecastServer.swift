import Datasets
import Foundation
import Logging
import Metrics
import Prometheus
import Telemetry

/// The model being served and what its intervals were calibrated on; replaced whole on reload.
final class Served: @unchecked Sendable {
    let model: ForecastModel
    let intervals: ConformalIntervals?
    /// The checkpoint files' identity (path and size), to notice new ones.
    let signature: [String]

    init(model: ForecastModel, intervals: ConformalIntervals?, signature: [String]) {
        self.model = model
        self.intervals = intervals
        self.signature = signature
    }
}

/// Serving: `POST /v1/forecast` over `HTTPServer` (with its limits), `/metrics`, `/healthz`, `/readyz`, and
/// a reload thread that swaps in the newest complete set of checkpoints while training goes on.
///
/// Request: `{"windows": [w1, w2, ...], "levels": [80, 95]}`, each window the `inputLength` most recent
/// values oldest first: numbers for a one-column model, or rows of `columns` numbers. Response:
/// `{"horizon": H, "input_length": L, "model": {...}, "forecasts": [{"values": [...], "lo_80": [...], ...}]}`.
/// Intervals need the series to calibrate on (`--data`); without it a request for levels gets 422.
public final class ForecastServer: @unchecked Sendable {
    public struct Options: Sendable {
        public var bind = "127.0.0.1"
        public var port = 8080
        public var source: ModelSource
        public var data: String?
        public var columns: [String] = []
        /// Seconds between looks at the checkpoint directory.
        public var reloadSeconds = 1.0
        public var limits = HTTPLimits()
        /// Windows one request may carry.
        public var maxWindows = 4096
        /// Levels offered (fractions); calibrated at load.
        public var levels: [Double] = [0.8, 0.95]
        /// Whether `levels` came from `--interval` (then a level that cannot be offered is worth a warning).
        public var levelsGiven = false

        public init(source: ModelSource) {
            self.source = source
            limits.maxBodyBytes = 8 << 20
        }
    }

    let options: Options
    let logger: Logger
    let lock = NSLock()
    /// Serialises use of the model (one inference copy).
    let compute = NSLock()
    var served: Served?
    let readiness = Readiness()
    public private(set) var http: HTTPServer!
    let stopFlag = NSCondition()
    var stopped = false
    var reloader: Thread?
    let registry: PrometheusCollectorRegistry
    let requests: [Int: Metrics.Counter]
    // Made after the registry is bootstrapped (metrics made before go nowhere).
    let latency: Metrics.Timer
    let windowsServed: Metrics.Counter
    let modelAge: Metrics.Gauge
    let reloads: Metrics.Counter
    var series: Series?

    /// Loads the model (and the calibration series), binds the port and starts serving and reloading.
    /// - Throws: `ForecastError`, `DataError`, `MetricsEndpointError.portTaken`-like `HTTPServerError`s.
    public init(_ options: Options, logger: Logger) throws {
        self.options = options
        self.logger = logger
        registry = Telemetry.bootstrap()
        var r: [Int: Metrics.Counter] = [:]
        for code in [200, 400, 404, 405, 413, 415, 422, 431, 500, 503] {
            r[code] = Metrics.Counter(label: "forecast_requests_total", dimensions: [("code", "\(code)")])
        }
        requests = r
        latency = Metrics.Timer(label: "forecast_request_seconds")
        windowsServed = Metrics.Counter(label: "forecast_windows_total")
        modelAge = Metrics.Gauge(label: "forecast_model_age_seconds")
        reloads = Metrics.Counter(label: "forecast_model_reloads_total")
        do {
            let first = try options.source.load()
            served = try prepare(first, announce: true)
            readiness.set(true)
            log(served!, event: "serving")
        } catch let e as ForecastError {
            // Beside a training run the servers may not have written a complete set yet: serve 503 (not
            // ready) until the reload thread finds one.
            guard case .checkpoints(let dir) = options.source else { throw e }
            switch e {
            case .noCheckpoints, .incomplete, .noSpec:
                logger.info(
                    "waiting for a complete set of checkpoints", metadata: ["directory": "\(dir)", "reason": "\(e)"])
            default: throw e
            }
        }
        http = try HTTPServer(
            address: options.bind, port: options.port, limits: options.limits, handlerThreads: 1,
            offload: { $0.path == "/v1/forecast" }
        ) { [unowned self] request in self.respond(request) }
        if case .checkpoints = options.source {
            let t = Thread { [self] in self.reloadLoop() }
            t.name = "forecast-reload"
            reloader = t
            t.start()
        }
    }

    public var port: Int { http.port }

    /// Stops serving and reloading.
    public func stop() {
        stopFlag.lock()
        stopped = true
        stopFlag.broadcast()
        stopFlag.unlock()
        http.stop()
    }

    /// - Parameter announce: say which asked-for interval levels cannot be offered (at start, not on every reload).
    func prepare(_ model: ForecastModel, announce: Bool = false) throws -> Served {
        if series == nil, options.data != nil || ForecastData.builtinName(of: model.spec.series) != nil {
            series = try ForecastData.load(options.data, columns: options.columns, timeColumn: nil, spec: model.spec)
                .series
        }
        var intervals: ConformalIntervals?
        if let series {
            let origins = Backtest.calibrationOrigins(model, series: series, before: series.count - 1)
            compute.lock()
            defer { compute.unlock() }
            intervals = try Backtest.intervals(model, series: series, origins: origins, levels: options.levels)
            // A level asked for at start that the calibration part cannot give is said now, not at the first request.
            for r in intervals?.refused ?? [] where announce && options.levelsGiven {
                logger.warning(
                    "interval level \(levelLabel(r.level))% is not offered: it needs \(r.needed) calibration windows and the data gives \(intervals?.windows ?? 0); give a lower --interval or more data"
                )
            }
        } else if announce && options.levelsGiven {
            logger.warning(
                "intervals are not offered: they are calibrated on the series, and the model's series (\(model.spec.series)) is not built in; give --data"
            )
        }
        let signature = model.files.map { f in
            "\(f):\((try? FileManager.default.attributesOfItem(atPath: f))?[.size] as? Int ?? 0)"
        }
        return Served(model: model, intervals: intervals, signature: signature)
    }

    func log(_ s: Served, event: String) {
        let age = Date().timeIntervalSince(s.model.newestFileDate)
        logger.info(
            "\(event): \(s.model.files.map(baseName).joined(separator: ", "))",
            metadata: [
                "updates": "\(s.model.updates.map(String.init).joined(separator: "+"))",
                "checkpoint.age.seconds": "\(String(format: "%.3f", age))",
                "calibration.windows": "\(s.intervals?.windows ?? 0)",
            ])
    }

    var current: Served? {
        lock.lock()
        defer { lock.unlock() }
        return served
    }

    /// Looks for a newer complete set of checkpoints every `reloadSeconds`; swaps it in whole.
    func reloadLoop() {
        guard case .checkpoints(let dir) = options.source else { return }
        var failedSignature: [String] = []
        while true {
            stopFlag.lock()
            if !stopped { _ = stopFlag.wait(until: Date().addingTimeInterval(options.reloadSeconds)) }
            let done = stopped
            stopFlag.unlock()
            if done { return }
            if let s = current { modelAge.record(Date().timeIntervalSince(s.model.newestFileDate)) }
            let files = ForecastModel.newestCheckpoints(in: dir)
            let signature = files.map { f in
                "\(f):\((try? FileManager.default.attributesOfItem(atPath: f))?[.size] as? Int ?? 0)"
            }
            guard !files.isEmpty, signature != current?.signature, signature != failedSignature else { continue }
            do {
                let model = try ForecastModel.load(checkpoints: dir)
                guard model.spec.config == current?.model.spec.config || current == nil else {
                    throw ForecastError.badValue(
                        "the new checkpoints describe a different model (\(model.spec.config)); keeping the one served")
                }
                let next = try prepare(model)
                lock.lock()
                served = next
                lock.unlock()
                readiness.set(true)
                reloads.increment()
                log(next, event: "reloaded")
            } catch {
                failedSignature = signature
                logger.warning("not reloaded; the model served stays", metadata: ["error": "\(error)"])
            }
        }
    }

    func respond(_ request: HTTPRequest) -> HTTPResponse {
        let started = DispatchTime.now().uptimeNanoseconds
        let response = route(request)
        (requests[response.status] ?? requests[500])?.increment()
        if request.path == "/v1/forecast" {
            latency.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
        }
        return response
    }

    func route(_ request: HTTPRequest) -> HTTPResponse {
        switch request.path {
        case "/v1/forecast":
            guard request.method == "POST" else {
                return HTTPResponse(
                    status: 405, body: Array("POST a JSON body to /v1/forecast\n".utf8), headers: [("Allow", "POST")])
            }
            return forecast(request)
        case "/v1/model":
            guard request.method == "GET" else {
                return HTTPResponse(status: 405, text: "only GET is served on /v1/model\n")
            }
            guard let s = current else { return Self.error(503, "no model loaded yet") }
            let info: [String: Any] = [
                "input_length": s.model.inputLength, "horizon": s.model.spec.config.horizon,
                "columns": s.model.spec.columns,
                "scaling": s.model.spec.scaling.rawValue, "season": s.model.spec.season ?? 0,
                "files": s.model.files.map(baseName), "updates": s.model.updates.map { Int($0) },
                "levels": (s.intervals?.halfWidths.keys.sorted() ?? []).map { $0 * 100 },
            ]
            let data = (try? JSONSerialization.data(withJSONObject: info, options: [.sortedKeys])) ?? Data()
            return HTTPResponse(status: 200, contentType: "application/json", body: Array(data))
        case "/metrics", "/healthz", "/readyz":
            guard request.method == "GET" else {
                return HTTPResponse(status: 405, text: "only GET is served on \(request.path)\n")
            }
            if request.path == "/healthz" { return HTTPResponse(status: 200, text: "ok\n") }
            if request.path == "/readyz" {
                return readiness.isReady
                    ? HTTPResponse(status: 200, text: "ready\n") : HTTPResponse(status: 503, text: "not ready\n")
            }
            if let s = current { modelAge.record(Date().timeIntervalSince(s.model.newestFileDate)) }
            return HTTPResponse(
                status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: registry.emitToBuffer())
        default:
            return HTTPResponse(
                status: 404, text: "no such endpoint: \(request.path); POST /v1/forecast, GET /v1/model\n")
        }
    }

    static func error(_ status: Int, _ message: String) -> HTTPResponse {
        let body = (try? JSONSerialization.data(withJSONObject: ["error": message])) ?? Data()
        return HTTPResponse(status: status, contentType: "application/json", body: Array(body) + [0x0A])
    }

    func forecast(_ request: HTTPRequest) -> HTTPResponse {
        guard let s = current else { return Self.error(503, "no model loaded yet") }
        if let type = request.header("content-type"), !type.lowercased().hasPrefix("application/json") {
            return Self.error(415, "send Content-Type: application/json")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(request.body), options: [.fragmentsAllowed]) else {
            return Self.error(
                400,
                "the body is not valid JSON (NaN, Infinity and numbers beyond ±1.8e308 are not JSON); send {\"windows\": [[...], ...], \"levels\": [80, 95]}"
            )
        }
        guard let body = object as? [String: Any] else {
            return Self.error(
                400,
                "the body is \(jsonKind(object)), not a JSON object; send {\"windows\": [[...], ...], \"levels\": [80, 95]}")
        }
        let spec = s.model.spec
        let L = s.model.inputLength
        let D = spec.columns.count
        guard let windows = body["windows"] as? [Any], !windows.isEmpty else {
            return Self.error(400, "\"windows\" must be a non-empty array of windows of \(L) values each")
        }
        guard windows.count <= options.maxWindows else {
            return Self.error(413, "\(windows.count) windows in one request; at most \(options.maxWindows)")
        }
        var histories: [[[Double]]] = []
        histories.reserveCapacity(windows.count)
        for (i, w) in windows.enumerated() {
            guard let rows = w as? [Any], rows.count == L else {
                return Self.error(
                    422,
                    "window \(i) must hold \(L) values (the model's window\(L > spec.config.window ? " plus its season" : "")), oldest first"
                )
            }
            var history: [[Double]] = []
            history.reserveCapacity(L)
            for (t, r) in rows.enumerated() {
                let values: [Any] = D == 1 && !(r is [Any]) ? [r] : (r as? [Any] ?? [])
                guard values.count == D else {
                    return Self.error(422, "window \(i) row \(t): the model takes \(D) values per row")
                }
                var row: [Double] = []
                for v in values {
                    guard let n = jsonNumber(v), n.isFinite, abs(n) <= 1e30 else {
                        return Self.error(422, "window \(i) row \(t): \(jsonKind(v)) is not a finite number up to 1e30")
                    }
                    row.append(n)
                }
                history.append(row)
            }
            histories.append(history)
        }
        var levels: [Double] = []
        if let asked = body["levels"] {
            guard let list = asked as? [Any], list.count <= 8 else {
                return Self.error(400, "\"levels\" must be an array of percentages such as [80, 95]")
            }
            for l in list {
                guard let n = jsonNumber(l), n > 0, n < 100 else {
                    return Self.error(400, "level \(jsonKind(l)) is not a percentage in (0, 100)")
                }
                levels.append(n / 100)
            }
        }
        var widths: [(Double, [Double])] = []
        for level in levels {
            guard let ci = s.intervals else {
                return Self.error(422, "no calibration data: start the server with --data to get intervals")
            }
            guard let w = ci.halfWidths.first(where: { abs($0.key - level) < 1e-9 })?.value else {
                return Self.error(
                    422,
                    "level \(levelLabel(level)) is not offered: offered \(ci.halfWidths.keys.sorted().map(levelLabel).joined(separator: ", ")) (--interval at start)"
                )
            }
            widths.append((level, w))
        }
        let forecasts: [[Double]]
        do {
            compute.lock()
            defer { compute.unlock() }
            forecasts = try s.model.forecast(histories)
        } catch {
            return Self.error(422, "\(error)")
        }
        windowsServed.increment(by: Int64(forecasts.count))
        let items: [[String: Any]] = forecasts.map { f in
            var item: [String: Any] = ["values": f]
            for (level, w) in widths {
                item["lo_\(levelLabel(level))"] = zip(f, w).map { $0 - $1 }
                item["hi_\(levelLabel(level))"] = zip(f, w).map { $0 + $1 }
            }
            return item
        }
        let out: [String: Any] = [
            "horizon": spec.config.horizon, "input_length": L, "column": spec.columns[0],
            "model": ["files": s.model.files.map(baseName), "updates": s.model.updates.map { Int($0) }]
                as [String: Any],
            "forecasts": items,
        ]
        let data: Data
        do { data = try JSONSerialization.data(withJSONObject: jsonSafe(out)) } catch {
            return Self.error(500, "could not encode the answer: \(error)")
        }
        return HTTPResponse(status: 200, contentType: "application/json", body: Array(data))
    }
}

/// The last component of a path.
func baseName(_ path: String) -> String { URL(fileURLWithPath: path).lastPathComponent }

/// A JSON number as Foundation parsed it, or nil for anything else (`true` and `false` are NSNumbers too,
/// of type char, and `0` would otherwise pass for `false`).
func jsonNumber(_ v: Any) -> Double? {
    guard let n = v as? NSNumber else { return nil }
    if String(cString: n.objCType) == "c" { return nil }
    return n.doubleValue
}

/// What a decoded JSON value is, for an error message: a number as itself, anything else by its kind (a
/// string quoted and cut short), so that `true` and `"1"` are not shown as `1`.
func jsonKind(_ v: Any) -> String {
    switch v {
    case is NSNull: return "null"
    case let s as String: return "the string \"\(s.prefix(40))\(s.count > 40 ? "..." : "")\""
    case is [Any]: return "an array"
    case is [String: Any]: return "an object"
    case let n as NSNumber:
        if String(cString: n.objCType) == "c" { return n.boolValue ? "true" : "false" }
        return "\(n.doubleValue)"
    default: return "a value of another kind"
    }
}
