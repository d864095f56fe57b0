import ArgumentParser
import Datasets
import Forecasting
import Foundation
import Logging
import ProcessSupport
import Telemetry

extension OutputFormat: ExpressibleByArgument {}
extension LogFormat: ExpressibleByArgument {}

/// `forecast`: uses a trained model. It parses and checks options, then hands them to `Forecasting`.
struct Forecast: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forecast",
        abstract: "Forecast with a trained model, backtest it, serve it over HTTP, or export it to ONNX.",
        discussion: """
            The model comes from a file written by `worker --save` (--model) or from the servers' checkpoint \
            directory (--restore: the newest file of each server). Everything it needs (sizes, scaling, season, \
            normaliser, training columns) is recorded there; the data defaults to the series it was trained on.
            Exit codes: 0 success, 64 bad usage (a --horizon other than the model's, an --output or \
            --export-onnx path that cannot be written), 65 bad data (too few rows, other columns, a corrupt \
            model), 66 a missing model or data file, 1 other failures (a write that fails late).
            """)

    @Option(help: "A model file written by `worker --save`.") var model: String?
    @Option(help: "The servers' checkpoint directory: the newest checkpoint of each server.") var restore: String?
    @Option(help: "CSV file, or co2, sunspots, synthetic (default: the series the model was trained on).") var data:
        String?
    @Option(help: "CSV column(s), target first (default: the model's training columns).") var column: [String] = []
    @Option(help: "The CSV's time column (default: one named date, time, year... or holding ISO dates).")
    var timeColumn: String?
    @Option(help: "Must equal the model's horizon, when given.") var horizon: Int?
    @Option(
        help: "Forecast after this row: a value of the time column, or #N for the 1-based row N (a bare N where the time column holds no integers; default: the last row).")
    var origin: String?
    @Option(help: "csv or json.") var format: OutputFormat = .csv
    @Option(help: "Write here instead of standard output.") var output: String?
    @Option(help: "Prediction interval levels in percent, e.g. 80,95 (split-conformal on held-out windows).")
    var interval: String?
    @Option(help: "Rolling-origin backtest over the last K origins; 0: the second half of the held-out part.")
    var backtest: Int?
    @Flag(help: "Serve POST /v1/forecast, /metrics, /healthz and /readyz over HTTP.") var serve = false
    @Option(help: "Port for --serve.") var port = 8080
    @Option(help: "Address for --serve.") var bind = "127.0.0.1"
    @Option(help: "Largest request body for --serve, in bytes.") var maxBodyBytes = 8 << 20
    @Option(help: "Seconds between looks for new checkpoints (--serve --restore).") var reloadSecs = 1.0
    @Option(help: "Write the model as an ONNX graph to this file.") var exportOnnx: String?
    @Option(help: "text or json (one object per line).") var logFormat: LogFormat = .text

    var levels: [Double] {
        get throws {
            guard let interval else { return [] }
            var out: [Double] = []
            for part in interval.split(separator: ",") {
                guard let v = Double(part.trimmingCharacters(in: .whitespaces)), v > 0, v < 100 else {
                    throw ValidationError(
                        "--interval takes percentages in (0, 100) separated by commas, e.g. 80,95; got '\(interval)'")
                }
                // A level given twice is one level: twice would be two identical columns.
                if !out.contains(v / 100) { out.append(v / 100) }
            }
            return out
        }
    }

    func validate() throws {
        guard (model == nil) != (restore == nil) else {
            throw ValidationError("give one of --model FILE or --restore DIR")
        }
        _ = try levels
        if let backtest, !(0...10_000_000).contains(backtest) {
            throw ValidationError("--backtest must be in 0...10000000, got \(backtest)")
        }
        if let horizon, !(1...100_000).contains(horizon) {
            throw ValidationError("--horizon must be in 1...100000, got \(horizon)")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535, got \(port)") }
        guard (0...(1 << 30)).contains(maxBodyBytes) else {
            throw ValidationError("--max-body-bytes must be in 0...1073741824")
        }
        guard reloadSecs.isFinite, reloadSecs >= 0.01, reloadSecs <= 3600 else {
            throw ValidationError("--reload-secs must be in [0.01, 3600]")
        }
        let modes = [serve, backtest != nil, exportOnnx != nil].filter { $0 }.count
        guard modes <= 1 else {
            throw ValidationError("--serve, --backtest and --export-onnx are separate uses: give one")
        }
    }

    func run() throws {
        bootstrapLogging(logFormat)
        let logger = Logger(label: "forecast")
        let source: ModelSource = model.map { .file($0) } ?? .checkpoints(restore!)
        let status = ForecastCommand.run(
            ForecastCommand.Options(
                source: source, data: data, columns: column, timeColumn: timeColumn, horizon: horizon, origin: origin,
                format: format, output: output, levels: try levels, backtest: backtest, serve: serve, port: port,
                bind: bind, maxBodyBytes: maxBodyBytes, reloadSeconds: reloadSecs, exportONNX: exportOnnx),
            logger: logger)
        if status != .success { throw ExitCode(status.rawValue) }
    }
}

// Before any other thread exists: signals go to a thread of their own, SIGPIPE is ignored.
SignalHandlers.prepareProcess()
Forecast.main()
