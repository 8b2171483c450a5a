/**
 * The subset of `onnx.proto` (proto2, field numbers as in onnx/onnx.proto) that a convolutional
 * classifier needs, compiled at load time with protobufjs.
 *
 * Why it exists: the frozen teacher runs on ONNX Runtime (3–4× faster than tfjs-wasm on one core), and the
 * only thing standing between a TF.js-trained model and ORT is writing a ModelProto. The official generated
 * code is large and pinned to an old protobufjs; the ~40 lines below are all we use. Decoding is here too,
 * so tests can check what a file contains without ORT.
 */
import protobuf from "protobufjs";

const ONNX_SUBSET = `
syntax = "proto2";
package onnx;
message AttributeProto {
  optional string name = 1;
  optional int32 type = 20;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
}
message ValueInfoProto { optional string name = 1; optional TypeProto type = 2; optional string doc_string = 3; }
message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  optional string domain = 7;
  repeated AttributeProto attribute = 5;
  optional string doc_string = 6;
}
message StringStringEntryProto { optional string key = 1; optional string value = 2; }
message OperatorSetIdProto { optional string domain = 1; optional int64 version = 2; }
message ModelProto {
  optional int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string domain = 4;
  optional int64 model_version = 5;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated StringStringEntryProto metadata_props = 14;
}
message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  optional string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}
message TensorProto {
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true];
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional string doc_string = 12;
  optional bytes raw_data = 9;
}
message TensorShapeProto {
  message Dimension {
    oneof value { int64 dim_value = 1; string dim_param = 2; }
    optional string denotation = 3;
  }
  repeated Dimension dim = 1;
}
message TypeProto {
  message Tensor { optional int32 elem_type = 1; optional TensorShapeProto shape = 2; }
  oneof value { Tensor tensor_type = 1; }
  optional string denotation = 6;
}
`;

/** TensorProto.DataType values we use. */
export const DataType = { FLOAT: 1, INT32: 6, INT64: 7 } as const;

/** AttributeProto.AttributeType values we use. */
export const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

/** Plain-object forms of the messages (snake_case, as in onnx.proto). int64 fields are JS numbers. */
export interface TensorProtoObj {
  name?: string;
  dims?: number[];
  data_type?: number;
  raw_data?: Uint8Array;
  float_data?: number[];
  int64_data?: number[];
  int32_data?: number[];
}
export interface AttributeProtoObj {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProtoObj;
  floats?: number[];
  ints?: number[];
}
export interface NodeProtoObj {
  input: string[];
  output: string[];
  name?: string;
  op_type: string;
  domain?: string;
  attribute?: AttributeProtoObj[];
}
export interface DimObj {
  dim_value?: number;
  dim_param?: string;
}
export interface ValueInfoProtoObj {
  name: string;
  type?: { tensor_type?: { elem_type?: number; shape?: { dim?: DimObj[] } } };
  doc_string?: string;
}
export interface GraphProtoObj {
  name?: string;
  node?: NodeProtoObj[];
  initializer?: TensorProtoObj[];
  input?: ValueInfoProtoObj[];
  output?: ValueInfoProtoObj[];
  value_info?: ValueInfoProtoObj[];
  doc_string?: string;
}
export interface ModelProtoObj {
  ir_version?: number;
  opset_import?: { domain?: string; version?: number }[];
  producer_name?: string;
  producer_version?: string;
  doc_string?: string;
  graph?: GraphProtoObj;
  metadata_props?: { key: string; value: string }[];
}

let _modelType: protobuf.Type | null = null;
function modelType(): protobuf.Type {
  if (_modelType === null) {
    const root = protobuf.parse(ONNX_SUBSET, { keepCase: true }).root;
    _modelType = root.lookupType("onnx.ModelProto");
  }
  return _modelType;
}

/** Serialise a ModelProto given as a plain object; the bytes load in ONNX Runtime as they are. */
export function encodeModel(model: ModelProtoObj): Uint8Array {
  const T = modelType();
  const msg = T.fromObject(model);
  return T.encode(msg).finish();
}

/**
 * Parse ONNX model bytes (only the fields of the subset above; others are skipped) into a plain object.
 * Throws one sentence naming `where` when the bytes are not a ModelProto.
 */
export function decodeModel(bytes: Uint8Array, where = "<bytes>"): ModelProtoObj {
  const T = modelType();
  try {
    const msg = T.decode(bytes);
    return T.toObject(msg, { longs: Number, defaults: false, arrays: true }) as ModelProtoObj;
  } catch (e) {
    throw new Error(`${where}: not an ONNX ModelProto (${(e as Error).message})`);
  }
}
