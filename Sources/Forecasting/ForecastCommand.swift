import Datasets
import Foundation
import Logging
import ProcessSupport
import SafeTensors
import Telemetry
import Training

/// What `forecast` does with its checked options, and the exit status of each failure.
public enum ForecastCommand {
    public struct Options: Sendable {
        public var source: ModelSource
        public var data: String?
        public var columns: [String]
        public var timeColumn: String?
        public var horizon: Int?
        public var origin: String?
        public var format: OutputFormat
        public var output: String?
        public var levels: [Double]
        public var backtest: Int?
        public var serve: Bool
        public var port: Int
        public var bind: String
        public var maxBodyBytes: Int
        public var reloadSeconds: Double
        public var exportONNX: String?

        public init(
            source: ModelSource, data: String?, columns: [String], timeColumn: String?, horizon: Int?, origin: String?,
            format: OutputFormat, output: String?, levels: [Double], backtest: Int?, serve: Bool, port: Int,
            bind: String,
            maxBodyBytes: Int, reloadSeconds: Double, exportONNX: String?
        ) {
            self.source = source
            self.data = data
            self.columns = columns
            self.timeColumn = timeColumn
            self.horizon = horizon
            self.origin = origin
            self.format = format
            self.output = output
            self.levels = levels
            self.backtest = backtest
            self.serve = serve
            self.port = port
            self.bind = bind
            self.maxBodyBytes = maxBodyBytes
            self.reloadSeconds = reloadSeconds
            self.exportONNX = exportONNX
        }
    }

    static func emit(_ text: String, to output: String?) throws {
        if let output {
            try writeReplacing(Data(text.utf8), to: output)
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }

    /// Runs one use of `forecast`; returns its exit status.
    public static func run(_ o: Options, logger: Logger) -> ExitStatus {
        do {
            if o.serve {
                var options = ForecastServer.Options(source: o.source)
                options.bind = o.bind
                options.port = o.port
                options.data = o.data
                options.columns = o.columns
                options.reloadSeconds = o.reloadSeconds
                options.limits.maxBodyBytes = o.maxBodyBytes
                if !o.levels.isEmpty {
                    options.levels = o.levels
                    options.levelsGiven = true
                }
                let server = try ForecastServer(options, logger: logger)
                logger.info("listening", metadata: ["http.port": "\(server.port)", "http.bind": "\(o.bind)"])
                let stop = StopFlag()
                let handlers = SignalHandlers([SIGTERM, SIGINT]) { _ in stop.request() }
                defer { handlers.cancel() }
                while !stop.isRequested { usleep(100_000) }
                server.stop()
                return .success
            }
            // Where the result goes is checked before any work, as `worker --save` is.
            for (option, path) in [("--output", o.output), ("--export-onnx", o.exportONNX)] {
                if let path, let problem = unwritableReason(path) {
                    logger.error("\(option): \(SafeTensors.Error.unwritable(path: path, reason: problem))")
                    return .usage
                }
            }
            let model = try o.source.load()
            if let h = o.horizon, h != model.spec.config.horizon {
                throw ForecastError.horizon(asked: h, model: model.spec.config.horizon)
            }
            if let path = o.exportONNX {
                try ONNXExport.write(model, to: path)
                logger.info(
                    "wrote \(path)",
                    metadata: [
                        "onnx.input": "history [batch, \(model.inputLength), \(model.spec.columns.count)]",
                        "onnx.output": "forecast [batch, \(model.spec.config.horizon)]",
                    ])
                return .success
            }
            let data = try ForecastData.load(o.data, columns: o.columns, timeColumn: o.timeColumn, spec: model.spec)
            // The built-in series' gaps are documented (CO2's 59 weeks); a user's file gets the warning.
            if let notice = data.series.filledNotice, ForecastData.builtinName(of: data.series.name) == nil {
                logger.warning("\(notice)")
            }
            if let k = o.backtest {
                let b = try Backtest.run(model, on: data.series, last: k == 0 ? nil : k, levels: o.levels)
                try emit(
                    o.format == .json
                        ? ForecastRun.json(b, name: data.series.name) : b.table(name: data.series.name) + "\n",
                    to: o.output)
                return .success
            }
            let origin = try ForecastRun.originRow(o.origin, data: data)
            let out = try ForecastRun.forecast(model, data: data, origin: origin, levels: o.levels)
            try emit(o.format == .json ? out.json() : out.csv(), to: o.output)
            return .success
        } catch let e as ForecastError {
            logger.error("\(e)")
            switch e {
            case .horizon: return .usage
            case .noCheckpoints: return .noInput
            case .unreadable(_, let reason) where reason == "no such file": return .noInput
            default: return .dataError
            }
        } catch let e as DataError {
            logger.error("\(e)")
            if case .fileNotFound = e { return .noInput }
            return .dataError
        } catch let e as SafeTensors.Error {
            logger.error("\(e)")
            if case .unreadable = e { return .noInput }
            if case .unwritable = e { return .failure }  // found writing, after the checks: a runtime failure
            return .dataError
        } catch let e as HTTPServerError {
            // The error names the address and the port; which option is wrong depends on the case.
            switch e {
            case .portTaken: logger.error("--port: \(e)")
            case .badAddress: logger.error("--bind: \(e)")
            case .badLimits: logger.error("\(e)")
            case .socket: logger.error("--bind/--port: \(e)")
            }
            return .usage
        } catch {
            logger.error("forecast failed: \(error)")
            return .failure
        }
    }
}
