/**
 * Where the frozen teacher's forward pass runs during distillation: ONNX Runtime in a Worker, or TF.js.
 *
 * Why it exists: in function matching the teacher sees every (augmented, mixed) batch, so its forward pass is
 * part of every student step. On ORT in a Deno Worker (1 intra-op thread) it runs on the second core while
 * the student's fwd+bwd+Adam runs on TF.js on the first; a distill loop submits batch k+1 to the teacher,
 * trains on batch k, then awaits k+1's logits. TF.js is the fallback where ORT cannot load; both variants
 * have the same interface, so the loop does not care which one it got.
 *
 * @example
 * ```ts
 * const teacher = await createTeacherRuntime({ runtime: "auto", onnxBytes, tfjsApply: (x) => model.apply(x) });
 * let pending = teacher.submit(first.x.slice(), first.shape);
 * for (...) { const next = …; const tLogits = await pending; pending = teacher.submit(next.x.slice(), next.shape);
 *             trainStudent(batch, tLogits); }
 * teacher.close();
 * ```
 */
import * as tf from "@tensorflow/tfjs";
import { loadOrt, ortLoadError } from "./ort.ts";
import type { FromWorker, ToWorker } from "./teacher_worker.ts";

/** Which engine a runtime uses. */
export type RuntimeName = "onnx" | "tfjs";

/** A teacher forward pass service; see {@link createTeacherRuntime}. */
export interface TeacherRuntime {
  readonly name: RuntimeName;
  /**
   * Queue a forward pass of `x` (NHWC float32, `shape` = [n, h, w, c]) and resolve with its logits [n, C].
   * ONNX variant: `x.buffer` is *transferred* to the worker, so `x` is empty (detached) after this call —
   * create the student's tensor from it first on a backend that copies (wasm does; cpu keeps a reference),
   * or pass `x.slice()`. A view on part of a larger buffer, or a SharedArrayBuffer, is copied instead.
   * TF.js variant: computes now, on this thread; `x` is left intact.
   */
  submit(x: Float32Array, shape: readonly number[]): Promise<Float32Array>;
  /** Stop the worker (pending submits reject) / release nothing for TF.js. Idempotent. */
  close(): void;
}

/** Options for {@link createTeacherRuntime}. */
export interface TeacherRuntimeOptions {
  /** "auto": ONNX if onnxruntime-node loads and `onnxBytes` is given, else TF.js (one message to stderr). */
  runtime: "onnx" | "tfjs" | "auto";
  /** The exported teacher (lib/export/onnx.ts), needed for "onnx". */
  onnxBytes?: Uint8Array;
  /** The teacher's TF.js forward (NHWC → logits), needed for "tfjs" and as the "auto" fallback. */
  tfjsApply?: (x: tf.Tensor4D) => tf.Tensor2D;
  /** ORT intra-op threads in the worker (default 1: the other core trains the student). */
  threads?: number;
  /** No fallback message on stderr. */
  quiet?: boolean;
}

/**
 * Start a teacher runtime. "onnx" throws (one sentence) if ORT cannot load or rejects the model; "auto"
 * falls back to TF.js instead, saying so once on stderr.
 */
export async function createTeacherRuntime(opts: TeacherRuntimeOptions): Promise<TeacherRuntime> {
  const { runtime } = opts;
  if (runtime === "tfjs") return tfjsRuntime(opts);
  if (runtime === "onnx") {
    if (!opts.onnxBytes) {
      throw new Error('createTeacherRuntime: runtime "onnx" needs onnxBytes (the exported teacher)');
    }
    const ort = await loadOrt({ quiet: true });
    if (ort === null) throw new Error(`createTeacherRuntime: runtime "onnx" unavailable: ${ortLoadError()}`);
    return await onnxWorkerRuntime(opts.onnxBytes, opts.threads ?? 1);
  }
  if (runtime !== "auto") {
    throw new Error(`createTeacherRuntime: runtime must be "onnx", "tfjs" or "auto", got "${runtime}"`);
  }
  let why: string | null = null;
  if (!opts.onnxBytes) why = "no ONNX teacher was given";
  else if ((await loadOrt({ quiet: true })) === null) why = ortLoadError();
  else {
    try {
      return await onnxWorkerRuntime(opts.onnxBytes, opts.threads ?? 1);
    } catch (e) {
      why = (e as Error).message;
    }
  }
  if (!opts.tfjsApply) {
    throw new Error(`createTeacherRuntime: ONNX teacher unavailable (${why}) and no tfjsApply given`);
  }
  if (!opts.quiet) console.error(`teacher runtime: using TF.js (${why})`);
  return tfjsRuntime(opts);
}

function tfjsRuntime(opts: TeacherRuntimeOptions): TeacherRuntime {
  const apply = opts.tfjsApply;
  if (!apply) {
    throw new Error('createTeacherRuntime: runtime "tfjs" needs tfjsApply (the teacher\'s forward pass)');
  }
  let closed = false;
  return {
    name: "tfjs",
    submit(x, shape) {
      if (closed) return Promise.reject(new Error("teacher runtime (tfjs) is closed"));
      try {
        const y = tf.tidy(() => apply(tf.tensor4d(x, shape as [number, number, number, number])));
        return y.data().then((d) => {
          y.dispose();
          return new Float32Array(d as Float32Array);
        });
      } catch (e) {
        return Promise.reject(e);
      }
    },
    close() {
      closed = true;
    },
  };
}

/** Take x's buffer for transfer when x spans all of a plain ArrayBuffer; otherwise a copy's. */
function transferable(x: Float32Array): ArrayBuffer {
  const b = x.buffer;
  if (b instanceof ArrayBuffer && x.byteOffset === 0 && x.byteLength === b.byteLength) return b;
  return new Float32Array(x).buffer as ArrayBuffer;
}

async function onnxWorkerRuntime(model: Uint8Array, threads: number): Promise<TeacherRuntime> {
  const worker = new Worker(new URL("./teacher_worker.ts", import.meta.url).href, { type: "module" });
  const pending = new Map<number, { resolve: (v: Float32Array) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let dead: Error | null = null;
  let closed = false;
  let onReady: { resolve: () => void; reject: (e: Error) => void } | null = null;

  const failAll = (err: Error) => {
    dead ??= err;
    onReady?.reject(err);
    onReady = null;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  worker.onmessage = (e: MessageEvent<FromWorker>) => {
    const m = e.data;
    if (m.type === "ready") {
      onReady?.resolve();
      onReady = null;
    } else if (m.type === "out") {
      const p = pending.get(m.id);
      pending.delete(m.id);
      p?.resolve(new Float32Array(m.logits));
    } else if (m.type === "error") {
      if (m.id === undefined) failAll(new Error(m.message));
      else {
        const p = pending.get(m.id);
        pending.delete(m.id);
        p?.reject(new Error(m.message));
      }
    }
  };
  worker.onerror = (e: ErrorEvent) => {
    e.preventDefault();
    failAll(new Error(`lib/export/teacher_worker.ts crashed: ${e.message}`));
  };

  const ready = new Promise<void>((resolve, reject) => (onReady = { resolve, reject }));
  const copy = new Uint8Array(model); // the worker takes ownership of the copy, the caller keeps its bytes
  worker.postMessage({ type: "init", model: copy, threads } satisfies ToWorker, [copy.buffer]);
  try {
    await ready;
  } catch (e) {
    worker.terminate();
    throw e;
  }

  return {
    name: "onnx",
    submit(x, shape) {
      if (dead) return Promise.reject(dead);
      const id = nextId++;
      const buf = transferable(x);
      return new Promise<Float32Array>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        worker.postMessage({ type: "run", id, buf, shape: [...shape] } satisfies ToWorker, [buf]);
      });
    },
    close() {
      if (closed) return;
      closed = true;
      failAll(new Error("teacher runtime (onnx) is closed"));
      worker.terminate();
    },
  };
}
