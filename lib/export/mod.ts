/**
 * The public surface of lib/export: BiT → ONNX export, ONNX Runtime sessions, and the teacher runtime that
 * hosts the frozen teacher on ORT in a Worker (or on TF.js where ORT cannot load).
 *
 * @example
 * ```ts
 * import { createTeacherRuntime, exportOnnx } from "./lib/export/mod.ts";
 * const onnxBytes = exportOnnx(teacher.spec, teacher.params, { imageSize: 32 });
 * const rt = await createTeacherRuntime({ runtime: "auto", onnxBytes, tfjsApply: (x) => teacher.apply(x) });
 * const logits = await rt.submit(batch.x.slice(), batch.shape);
 * rt.close();
 * ```
 * @module
 */
export {
  exportOnnx,
  type ExportOptions,
  ONNX_IR_VERSION,
  ONNX_OPSET,
  type ParamValue,
  samePads,
  standardizeToOihw,
} from "./onnx.ts";
export {
  createSession,
  loadOrt,
  type Ort,
  ortLoadError,
  type OrtSession,
  runLogits,
  type SessionOptions,
} from "./ort.ts";
export {
  createTeacherRuntime,
  type RuntimeName,
  type TeacherRuntime,
  type TeacherRuntimeOptions,
} from "./teacher_runtime.ts";
export { decodeModel, encodeModel, type ModelProtoObj } from "./proto.ts";
export { type Attr, f, GraphBuilder } from "./graph.ts";
