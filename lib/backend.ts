/**
 * Picks the TensorFlow.js backend for this process and makes it able to train.
 *
 * Why: the fastest backend differs per machine. The native ones (tfjs-node-gpu, tfjs-node) need libtensorflow,
 * which their install script downloads; where that was impossible their import fails cleanly and we move on
 * to wasm (XNNPACK, SIMD, optionally 2 threads), then to the pure-JS cpu backend. wasm and cpu cannot train
 * conv nets well as shipped, so our replacement gradient kernels (lib/kernels/) are registered before the
 * backend is selected. On wasm, convolutions and their gradients run in natively compiled code when the machine
 * has a C compiler (lib/kernels/native: 2–4× XNNPACK's speed, and on `threads` cores); the wasm module itself
 * then stays single-threaded, which avoids its flaky threaded start. Every attempt leaves one line in
 * `BackendInfo.tried`, printed to stderr unless quiet.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { initThreadedWasm } from "./kernels/wasm_threads.ts";
import { registerNativeKernels, registerTrainingKernels } from "./kernels/mod.ts";
import { loadNative } from "./kernels/native/build.ts";
import { gpuDevicePresent } from "./gpu.ts";

export { gpuAvailable } from "./gpu.ts";

/** A backend we can select. "tensorflow" is libtensorflow via tfjs-node(-gpu). */
export type BackendName = "tensorflow" | "wasm" | "cpu";

/** What `initBackend` selected, and one line per attempt. */
export interface BackendInfo {
  name: BackendName;
  /** Compute threads (wasm: its own, or the native kernels'; tensorflow: os cores; cpu: 1). */
  threads: number;
  /** wasm only: convolutions run in the native kernels (with `threads` threads; the wasm module has 1). */
  native: boolean;
  /** One phrase for logs and reports, e.g. "wasm, native convolutions on 2 threads". */
  label: string;
  /** True when tfjs-node-gpu loaded and a GPU device is present. */
  gpu: boolean;
  /** One line per attempt, in order, ending with the choice. */
  tried: string[];
}

/** Options of `initBackend`. */
export interface InitBackendOptions {
  /** "auto" (default) tries tensorflow-gpu → tensorflow → wasm → cpu; a name forces that backend (or fails). */
  backend?: BackendName | "auto";
  /**
   * Compute threads (default 1): the native kernels' when they load, else the wasm module's (more than 1 uses
   * the threaded wasm build; if it fails, 1 thread is used).
   */
  threads?: number;
  /** wasm: "auto" (default) uses the native conv kernels when they build; "off" keeps XNNPACK's. */
  native?: "auto" | "off";
  /** Do not print the attempt lines to stderr. */
  quiet?: boolean;
}

let current: { key: string; info: Promise<BackendInfo> } | null = null;

/**
 * Select and initialise the backend; idempotent for the same options (a later call with different options
 * is an error: a process has one backend).
 *
 * @example
 * ```ts
 * const info = await initBackend({ backend: "auto" });
 * console.log(info.name, info.threads);
 * ```
 */
export function initBackend(opts: InitBackendOptions = {}): Promise<BackendInfo> {
  const key = JSON.stringify([opts.backend ?? "auto", opts.threads ?? 1, opts.native ?? "auto"]);
  if (current) {
    if (current.key !== key) {
      return Promise.reject(
        new Error(
          `lib/backend.ts: backend already initialised with ${current.key}, cannot switch to ${key}.`,
        ),
      );
    }
    return current.info;
  }
  const info = pick(opts);
  current = { key, info };
  info.catch(() => current = null);
  return info;
}

async function pick(opts: InitBackendOptions): Promise<BackendInfo> {
  const want = opts.backend ?? "auto";
  if (!["auto", "tensorflow", "wasm", "cpu"].includes(want)) {
    throw new Error(`lib/backend.ts: unknown backend '${want}', expected auto, tensorflow, wasm or cpu.`);
  }
  const tried: string[] = [];
  const say = (line: string, print = true) => {
    tried.push(line);
    if (print && !opts.quiet) console.error(`backend: ${line}`);
  };
  const plural = (n: number) => `${n} thread${n === 1 ? "" : "s"}`;
  const done = (name: BackendName, threads: number, gpu: boolean, native = false): BackendInfo => {
    const label = native
      ? `wasm, native convolutions on ${plural(threads)}`
      : `${name}${name === "wasm" ? ` (${plural(threads)})` : ""}${gpu ? " on GPU" : ""}`;
    say(`using ${label}`);
    return { name, threads, gpu, native, label, tried };
  };

  if (want === "auto" || want === "tensorflow") {
    const failed: [string, string][] = [];
    for (const pkg of ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]) {
      const err = await tryImport(pkg);
      if (err === null && tf.findBackend("tensorflow") && await tf.setBackend("tensorflow")) {
        const gpu = pkg.endsWith("-gpu") && await gpuDevicePresent();
        return done("tensorflow", navigator.hardwareConcurrency ?? 1, gpu);
      }
      const why = err ?? "backend did not initialise";
      failed.push([pkg, why]);
      say(`${pkg} unavailable: ${why}`, false);
    }
    // one line for both when they fail alike (the usual case: no libtensorflow), so every stage's log is not
    // led by two long lines
    if (!opts.quiet) {
      const [[a, wa], [b, wb]] = failed;
      if (wa === wb) console.error(`backend: ${a} and ${b} unavailable: ${wa}`);
      else for (const [p, w] of failed) console.error(`backend: ${p} unavailable: ${w}`);
    }
    if (want === "tensorflow") {
      throw new Error(
        `lib/backend.ts: backend 'tensorflow' was requested but neither tfjs-node-gpu nor tfjs-node loads.`,
      );
    }
  }

  if (want === "auto" || want === "wasm") {
    registerTrainingKernels("wasm");
    const threads = Math.max(1, Math.floor(opts.threads ?? 1));
    if ((opts.native ?? "auto") === "auto") {
      const n = await loadNative();
      if (n.ok) {
        if (n.built) say(`native kernels built with ${n.compiler} (${n.path})`);
        if (await tf.setBackend("wasm")) {
          registerNativeKernels(n.lib, threads);
          quietCpuBanner();
          return done("wasm", threads, false, true);
        }
      } else say(`native kernels unavailable: ${n.reason}; convolutions stay on XNNPACK`);
    }
    if (threads > 1) {
      const r = await initThreadedWasm(threads);
      if (r.ok) {
        quietCpuBanner();
        return done("wasm", r.threads, false);
      }
      say(`wasm with ${threads} threads failed (${r.reason}); using 1 thread`);
    }
    if (await tf.setBackend("wasm")) {
      quietCpuBanner();
      return done("wasm", 1, false);
    }
    say("wasm unavailable: the wasm binary did not initialise");
    if (want === "wasm") {
      throw new Error(`lib/backend.ts: backend 'wasm' was requested but failed to initialise.`);
    }
  }

  registerTrainingKernels("cpu");
  quietCpuBanner();
  if (!await tf.setBackend("cpu")) {
    throw new Error("lib/backend.ts: even the cpu backend failed to initialise.");
  }
  return done("cpu", 1, false);
}

/** Import a native tfjs package, swallowing its "kernel already registered" warnings; null on success. */
async function tryImport(pkg: string): Promise<string | null> {
  const warn = console.warn;
  console.warn = () => {};
  try {
    await import(pkg);
    return null;
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split("\n")[0].trim();
    const m = /can not be found at path: (\S+?)\.?$/.exec(msg);
    return m ? "native addon not built (libtensorflow was not installed)" : msg;
  } finally {
    console.warn = warn;
  }
}

/** The cpu backend prints an "install tfjs-node" banner on first use; we already said what we chose. */
function quietCpuBanner(): void {
  const warn = console.warn;
  console.warn = () => {};
  try {
    const cpu = tf.findBackend("cpu") as unknown as { firstUse?: boolean } | null;
    if (cpu) cpu.firstUse = false;
  } finally {
    console.warn = warn;
  }
}
