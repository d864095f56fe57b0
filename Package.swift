// swift-tools-version:6.0
import PackageDescription

/// A distributed trainer for the seq2seq attention forecaster of the TF1 variable-scope question.
///
/// Modules by concern, bottom up: C bindings (`CZeroMQ`, `COpenBLAS`) and their Swift wrappers
/// (`ZeroMQ`, `BLAS`); tensors (`Tensors`); TF1 variable scopes (`VariableScopes`).
let package = Package(
    name: "ScopedTrainer",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "ps-server", targets: ["ps-server"]),
        .executable(name: "worker", targets: ["worker"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .systemLibrary(name: "CZeroMQ", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "COpenBLAS", providers: [.apt(["libopenblas-dev"])]),
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"]),
        .target(name: "BLAS", dependencies: ["COpenBLAS"]),
        .target(name: "Tensors"),
        .target(name: "VariableScopes", dependencies: ["Tensors"]),
        .target(name: "Autodiff", dependencies: ["BLAS", "Tensors", "VariableScopes"]),
        .target(name: "Model", dependencies: ["Autodiff", "VariableScopes"]),
        .target(name: "SafeTensors"),
        .target(name: "Datasets"),
        .target(name: "Optimizers"),
        .target(name: "Training", dependencies: ["Model", "Datasets", "Optimizers", "VariableScopes", "SafeTensors"]),
        .target(name: "Wire", dependencies: ["ZeroMQ", "Optimizers", "VariableScopes", "Tensors"]),
        .target(
            name: "ParameterServer",
            dependencies: ["Wire", "ZeroMQ", "Optimizers", "VariableScopes", "SafeTensors", .product(name: "Logging", package: "swift-log")]),
        .target(
            name: "WorkerRuntime",
            dependencies: ["Wire", "ZeroMQ", "Training", "VariableScopes", "Tensors", "SafeTensors", .product(name: "Logging", package: "swift-log")]),
        .executableTarget(
            name: "ps-server",
            dependencies: [
                "ZeroMQ", "ParameterServer", "Wire", "Optimizers",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "worker",
            dependencies: [
                "ZeroMQ", "BLAS", "VariableScopes", "Model", "Datasets", "Training", "Optimizers", "WorkerRuntime", "SafeTensors",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "bench",
            dependencies: [
                "BLAS", "Datasets", "Model", "Optimizers", "VariableScopes",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "BLASTests", dependencies: ["BLAS"]),
        .testTarget(name: "VariableScopesTests", dependencies: ["VariableScopes"]),
        .testTarget(name: "AutodiffTests", dependencies: ["Autodiff", "VariableScopes"]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "SafeTensors", "VariableScopes", "Autodiff"]),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors"]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets"]),
        .testTarget(name: "WireTests", dependencies: ["Wire", "VariableScopes", "ZeroMQ"]),
        .testTarget(
            name: "ParameterServerTests",
            dependencies: ["ParameterServer", "WorkerRuntime", "Wire", "ZeroMQ", "VariableScopes", .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["Datasets", "Model", "Optimizers", "SafeTensors", "Training", "VariableScopes", "Wire", "ZeroMQ"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Model", "Datasets", "Optimizers", "VariableScopes", "SafeTensors"]),
    ],
    swiftLanguageModes: [.v5]
)
