// The ONNX library layer: read and write ModelProto (protobufjs with onnx.proto), tensors, external data, graph edits.

export * from './proto.js';
export * from './tensor.js';
export * from './graph.js';
