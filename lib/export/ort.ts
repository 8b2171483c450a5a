/**
 * ONNX Runtime (onnxruntime-node, native CPU execution provider) behind three small helpers.
 *
 * Why it exists: the frozen teacher's forward pass is 3–4× faster on ORT than on tfjs-wasm on one core
 * (research/onnxruntime-on-deno.md). ORT is an optional accelerator, not a requirement: its native binding
 * needs --allow-ffi and a platform binary, so `loadOrt()` imports it lazily and returns null (with one
 * message) where it cannot load, and callers fall back to TF.js.
 */
// Types only: the module itself is imported dynamically in loadOrt().
import type * as OrtModule from "onnxruntime-node";

/** The onnxruntime-node module namespace. */
export type Ort = typeof OrtModule;
/** An ORT inference session. */
export type OrtSession = OrtModule.InferenceSession;

let cached: Promise<Ort | null> | null = null;
let loadError: string | null = null;
let warned = false;

/**
 * Import onnxruntime-node once. Returns null when it cannot load (missing binary, no --allow-ffi, …) and then
 * prints one line to stderr (once per process) saying why and that TF.js will be used, unless `quiet`.
 */
export function loadOrt(opts: { quiet?: boolean } = {}): Promise<Ort | null> {
  if (cached === null) {
    cached = (async () => {
      try {
        const mod = await import("onnxruntime-node");
        const ort = mod as unknown as Ort;
        if (typeof ort.InferenceSession?.create !== "function") {
          throw new Error("no InferenceSession.create export");
        }
        return ort;
      } catch (e) {
        const msg = String((e as Error)?.message ?? e).split("\n")[0];
        loadError = `onnxruntime-node could not be loaded (${msg}); the teacher will run on TF.js`;
        return null;
      }
    })();
  }
  return cached.then((ort) => {
    if (ort === null && !opts.quiet && !warned) {
      warned = true;
      console.error(loadError);
    }
    return ort;
  });
}

/** Why the last `loadOrt()` failed, or null if it loaded (or was never called). */
export function ortLoadError(): string | null {
  return loadError;
}

/** Options for {@link createSession}. */
export interface SessionOptions {
  /** intra-op threads (default 1: the other core is for TF.js). */
  threads?: number;
  /** "all" (default; its NCHWc layout pass is worth 1.1–2×), "extended", "basic" or "disabled". */
  optimization?: "disabled" | "basic" | "extended" | "all";
}

/**
 * Create a CPU session from ONNX bytes or a file path. Throws one sentence naming the model when ORT is
 * unavailable or rejects the model.
 */
export async function createSession(
  model: Uint8Array | string,
  opts: SessionOptions = {},
): Promise<OrtSession> {
  const ort = await loadOrt({ quiet: true });
  const where = typeof model === "string" ? model : `<${model.byteLength}-byte ONNX model>`;
  if (ort === null) throw new Error(`cannot open ${where}: ${ortLoadError()}`);
  const options: OrtModule.InferenceSession.SessionOptions = {
    executionProviders: ["cpu"],
    graphOptimizationLevel: opts.optimization ?? "all",
    intraOpNumThreads: opts.threads ?? 1,
    interOpNumThreads: 1,
    executionMode: "sequential",
  };
  try {
    return typeof model === "string"
      ? await ort.InferenceSession.create(model, options)
      : await ort.InferenceSession.create(model, options);
  } catch (e) {
    throw new Error(`ONNX Runtime rejected ${where}: ${(e as Error).message}`);
  }
}

/**
 * Run a one-input/one-output classifier: `x` (float32, `shape`, NHWC for our exports) → logits (a fresh
 * Float32Array owned by the caller). Input and output names are taken from the session.
 */
export async function runLogits(
  session: OrtSession,
  x: Float32Array,
  shape: readonly number[],
): Promise<Float32Array> {
  const ort = await loadOrt({ quiet: true });
  if (ort === null) throw new Error(`runLogits: ${ortLoadError()}`);
  const n = shape.reduce((a, b) => a * b, 1);
  if (x.length !== n) throw new Error(`runLogits: input has ${x.length} floats, shape [${shape}] needs ${n}`);
  const input = new ort.Tensor("float32", x, shape as number[]);
  const out = await session.run({ [session.inputNames[0]]: input });
  const t = out[session.outputNames[0]];
  const data = t.data as Float32Array;
  // ORT hands back a view it owns; return a standalone copy the caller may transfer or keep.
  const res = new Float32Array(data);
  t.dispose?.();
  input.dispose?.();
  return res;
}
