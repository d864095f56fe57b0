// swift-tools-version:6.0
import PackageDescription

/// A distributed trainer for the seq2seq attention forecaster of the TF1 variable-scope question.
///
/// Modules by concern, bottom up: C bindings (`CZeroMQ`, `COpenBLAS`) and their Swift wrappers
/// (`ZeroMQ`, `BLAS`); tensors; TF1 variable scopes (the variable store); autodiff and the model; data,
/// optimizers and training; the wire protocol (`Wire`, Foundation only), the transports that carry it
/// (`Transport`), the server's rules and loop (`ParameterServer`) and the worker's side (`WorkerRuntime`);
/// then thin executables.
let package = Package(
    name: "ScopedTrainer",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "ps-server", targets: ["ps-server"]),
        .executable(name: "worker", targets: ["worker"]),
        .executable(name: "forecast", targets: ["forecast"]),
        .executable(name: "ps-load", targets: ["ps-load"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        .systemLibrary(name: "CZeroMQ", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "COpenBLAS", providers: [.apt(["libopenblas-dev"])]),
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"]),
        .target(name: "BLAS", dependencies: ["COpenBLAS"]),
        // Hand-vectorised (AVX2 + FMA, chosen at run time) elementwise LSTM and optimizer kernels in C.
        .target(name: "CKernels"),
        .target(name: "Tensors"),
        .target(name: "VariableScopes", dependencies: ["Tensors"]),
        .target(name: "Autodiff", dependencies: ["BLAS", "CKernels", "Tensors", "VariableScopes"]),
        .target(name: "Model", dependencies: ["Autodiff", "Tensors", "VariableScopes"]),
        .target(name: "SafeTensors"),
        // The built-in series are resources compiled into the code (`.embedInCode`), so each binary carries
        // them and needs no bundle directory beside it: the Docker image ships only binaries.
        .target(
            name: "Datasets",
            resources: [
                .embedInCode("Resources/co2_weekly_mauna_loa.csv"), .embedInCode("Resources/sunspots_yearly.csv"),
            ]),
        .target(name: "Optimizers", dependencies: ["CKernels"]),
        .target(name: "CSignals"),
        .target(name: "ProcessSupport", dependencies: ["CSignals", .product(name: "Logging", package: "swift-log")]),
        .target(name: "Exchange", dependencies: ["Optimizers", "VariableScopes"]),
        .target(
            name: "Telemetry",
            dependencies: [
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "Training",
            dependencies: [
                "Autodiff", "Model", "Datasets", "Exchange", "Optimizers", "ProcessSupport", "VariableScopes",
                "SafeTensors", "Tensors",
            ]),
        .target(name: "Wire", dependencies: ["SafeTensors"]),
        .target(name: "Transport", dependencies: ["Wire", "ZeroMQ"]),
        .target(
            name: "ParameterServer",
            dependencies: [
                "Wire", "Transport", "ZeroMQ", "Optimizers", "ProcessSupport", "VariableScopes", "SafeTensors", "Tensors",
                "Telemetry", .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]),
        .target(
            name: "WorkerRuntime",
            dependencies: [
                "Wire", "Transport", "Exchange", "Optimizers", "VariableScopes", "Tensors", "SafeTensors",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "WorkerJob",
            dependencies: [
                "BLAS", "Datasets", "Exchange", "Model", "Optimizers", "ProcessSupport", "Training", "Transport",
                "VariableScopes", "WorkerRuntime", "ZeroMQ", "Telemetry", "Wire", "SafeTensors",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]),
        .executableTarget(
            name: "ps-server",
            dependencies: [
                "ZeroMQ", "Transport", "ParameterServer", "ProcessSupport", "Wire", "Optimizers",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "worker",
            dependencies: [
                "ZeroMQ", "Datasets", "Model", "Optimizers", "ProcessSupport", "Training", "VariableScopes",
                "WorkerJob", "WorkerRuntime", "Wire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // Generated from the onnx.proto of the `onnx` PyPI package by scripts/gen-onnx-proto.sh; not edited.
        .target(name: "ONNXProto", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(
            name: "Forecasting",
            dependencies: [
                "Datasets", "Model", "ONNXProto", "ProcessSupport", "SafeTensors", "Telemetry", "Training",
                "VariableScopes", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .executableTarget(
            name: "forecast",
            dependencies: [
                "Datasets", "Forecasting", "ProcessSupport", "Telemetry",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "bench",
            dependencies: [
                "BLAS", "Datasets", "Exchange", "Model", "Optimizers", "Training", "VariableScopes",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // The load generator: simulated workers on WorkerRuntime's public API against real ps-server processes.
        .target(
            name: "LoadGenerator",
            dependencies: [
                "ProcessSupport", "Transport", "VariableScopes", "Wire", "WorkerRuntime", "ZeroMQ",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "ps-load",
            dependencies: [
                "LoadGenerator", "ProcessSupport", "Wire", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(name: "FuzzSupport"),
        .executableTarget(name: "FuzzServer", dependencies: ["FuzzSupport", "ParameterServer", "Optimizers", "Transport", "Wire", .product(name: "Logging", package: "swift-log")]),
        .executableTarget(
            name: "FuzzSafeTensors",
            dependencies: ["FuzzSupport", "SafeTensors", "ParameterServer", "Optimizers", "Transport", "Wire", .product(name: "Logging", package: "swift-log")]),
        .executableTarget(
            name: "FuzzWorkerReplies",
            dependencies: [
                "FuzzSupport", "WorkerRuntime", "ParameterServer", "Optimizers", "Transport", "VariableScopes", "Wire",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "BLASTests", dependencies: ["BLAS"]),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors"]),
        .testTarget(name: "VariableScopesTests", dependencies: ["VariableScopes", "Tensors"]),
        .testTarget(name: "AutodiffTests", dependencies: ["Autodiff", "VariableScopes"]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "SafeTensors", "VariableScopes", "Autodiff"]),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors"]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets"]),
        .testTarget(name: "OptimizersTests", dependencies: ["Optimizers"]),
        .testTarget(name: "WireTests", dependencies: ["Wire"]),
        .testTarget(name: "TransportTests", dependencies: ["Transport", "Wire", "ZeroMQ"]),
        .testTarget(
            name: "ParameterServerTests",
            dependencies: [
                "ParameterServer", "Optimizers", "SafeTensors", "Transport", "VariableScopes", "Wire",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "WorkerRuntimeTests",
            dependencies: [
                "WorkerRuntime", "ParameterServer", "Exchange", "Optimizers", "ProcessSupport", "Transport", "VariableScopes",
                "Wire", "SafeTensors", .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "ProcessSupportTests", dependencies: ["ProcessSupport"]),
        .testTarget(name: "ExchangeTests", dependencies: ["Exchange", "Optimizers", "VariableScopes"]),
        .testTarget(
            name: "WorkerJobTests",
            dependencies: ["WorkerJob", "SafeTensors", "Datasets", "Training", "Model", "VariableScopes", "WorkerRuntime"]),
        .testTarget(
            name: "TelemetryTests",
            dependencies: [
                "Telemetry", .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "Datasets", "Exchange", "Model", "Optimizers", "SafeTensors", "Training", "VariableScopes", "Wire",
                "Transport", "ZeroMQ",
            ]),
        .testTarget(
            name: "ForecastingTests",
            dependencies: [
                "Forecasting", "Datasets", "Model", "SafeTensors", "Telemetry", "Training", "VariableScopes",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "LoadGeneratorTests", dependencies: ["LoadGenerator", "VariableScopes", "Wire"]),
        .testTarget(
            name: "TrainingTests",
            dependencies: ["Training", "Exchange", "Model", "Datasets", "Optimizers", "VariableScopes", "SafeTensors"]),
    ],
    swiftLanguageModes: [.v6]
)
