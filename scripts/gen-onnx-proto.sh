#!/usr/bin/env bash
# Regenerates Sources/ONNXProto/onnx.pb.swift from the onnx.proto that the `onnx` PyPI package ships, with
# protoc (Debian's protobuf-compiler) and protoc-gen-swift built from the swift-protobuf release the package
# resolves (1.39.0). The generated file is committed; run this only to move to a newer onnx.proto.
set -euo pipefail
cd "$(dirname "$0")/.."
proto="$(python3 -c 'import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "onnx.proto"))')"
plugin="${PROTOC_GEN_SWIFT:-}"
if [[ -z "$plugin" ]]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    git clone -q --branch 1.39.0 "${SWIFT_PROTOBUF_GIT:-/opt/swift-packages/apple/swift-protobuf.git}" "$work/sp"
    (cd "$work/sp" && swift build -c release --product protoc-gen-swift)
    plugin="$work/sp/.build/release/protoc-gen-swift"
fi
out="$(mktemp -d)"
cp "$proto" "$out/onnx.proto"
(cd "$out" && protoc --plugin=protoc-gen-swift="$plugin" --swift_out=. --swift_opt=Visibility=Public onnx.proto)
cp "$out/onnx.pb.swift" Sources/ONNXProto/onnx.pb.swift
rm -rf "$out"
echo "wrote Sources/ONNXProto/onnx.pb.swift from $proto"
