/**
 * Loads tfjs-backend-wasm's multi-threaded (pthreads + SIMD) build under Deno.
 *
 * Why: tfjs disables wasm threads whenever it detects Node-like environments, and forcing them on fails under
 * Deno in several ways: Emscripten hands `node:worker_threads` a `blob:` URL for the worker script (Deno's
 * worker_threads wants a file path), it posts the main script to each worker as a Blob (the worker can only
 * read files), the factory text refers to bundler-renamed globals (`require$$0`…, `commonjsGlobal`) that do not
 * exist in the worker, Deno's worker global has getter-only `self`/`location` (Emscripten's Object.assign
 * throws), and messages posted before the worker listens can be lost. We fix each at its seam: blobs become
 * temp files, the "load" message carries a file path, a prelude defines the renamed globals, the global
 * assignment becomes defensive, and "load" is held until the worker says it is listening. tfjs also caps the
 * pool at half the logical cores (1 on a 2-core box), so `os.cpus()` is inflated while the backend starts.
 *
 * Even then a start sometimes hangs (seen in ~1 of 5 starts on a busy 2-core box): one of Emscripten's 8 pool
 * workers never begins executing. A healthy start takes ~0.5 s, so each attempt gets a few seconds; a hung one
 * is abandoned (workers terminated, backend re-registered) and retried; after the last attempt the wasm
 * backend is left registered for a single-threaded start.
 */
import * as tf from "@tensorflow/tfjs";
import * as tfwasm from "@tensorflow/tfjs-backend-wasm";
import os from "node:os";
import { Worker as NodeWorker } from "node:worker_threads";

const READY = "__funmatch_worker_ready";
const FACTORY_PREFIX = "var WasmBackendModuleThreadedSimd";

/** Outcome of `initThreadedWasm`. */
export interface ThreadedInit {
  ok: boolean;
  /** Threads the wasm thread pool actually uses (when ok). */
  threads: number;
  /** Start attempts made (a start that hangs is abandoned after `attemptMs` and retried). */
  attempts: number;
  /** Why it failed (when not ok): one reason per attempt. */
  reason?: string;
}

// deno-lint-ignore no-explicit-any
type Any = any;

let protoPatched = false;
const readyWorkers = new WeakSet<object>();
const heldLoads = new WeakMap<object, [unknown, unknown][]>();
const seenWorkers = new Set<NodeWorker>();
let factoryFile = "";

/** Patch node:worker_threads' Worker so "load" waits for the worker's ready signal (installed once, for good). */
function patchWorkerPrototype(): void {
  if (protoPatched) return;
  protoPatched = true;
  const proto = NodeWorker.prototype as Any;
  const origPost = proto.postMessage;
  const origOn = proto.on;
  const flush = (w: object) => {
    if (readyWorkers.has(w)) return;
    readyWorkers.add(w);
    for (const [m, t] of heldLoads.get(w) ?? []) origPost.call(w, m, t);
    heldLoads.delete(w);
  };
  proto.postMessage = function (this: NodeWorker, msg: Any, transfer?: unknown) {
    if (msg && msg.cmd === "load") {
      seenWorkers.add(this);
      // the worker cannot read a Blob: give it the factory file we wrote
      if (factoryFile && typeof msg.urlOrBlob !== "string") msg = { ...msg, urlOrBlob: factoryFile };
      if (!readyWorkers.has(this)) {
        const q = heldLoads.get(this) ?? [];
        q.push([msg, transfer]);
        heldLoads.set(this, q);
        return;
      }
    }
    return origPost.call(this, msg, transfer);
  };
  proto.on = function (this: NodeWorker, event: string | symbol, fn: (...a: unknown[]) => void) {
    if (event !== "message") return origOn.call(this, event, fn);
    seenWorkers.add(this);
    return origOn.call(this, event, (data: Any) => {
      if (data && data.cmd === READY) return flush(this);
      fn(data);
    });
  };
}

/** Worker-side additions: defensive global assignment and the ready signal. */
function patchWorkerScript(text: string): string {
  const assign = "Object.assign(global,{";
  if (!text.includes(assign)) {
    throw new Error(
      "lib/kernels/wasm_threads.ts: the wasm worker script changed (no 'Object.assign(global,{').",
    );
  }
  const safeAssign = "((o)=>{for(const k of Object.keys(o)){try{global[k]=o[k]}catch(_){try{" +
    "Object.defineProperty(global,k,{value:o[k],configurable:true,writable:true})}catch(_){}}}})({";
  const ready = `;(()=>{const pp=require("worker_threads").parentPort;let heard=false;` +
    `pp.on("message",()=>{heard=true});const ping=()=>{if(heard)return;pp.postMessage({cmd:"${READY}"});` +
    `setTimeout(ping,20)};ping()})();`;
  return text.replace(assign, safeAssign) + ready;
}

/**
 * Start the wasm backend with `threads` threads (the backend is selected on success). Must be called before
 * anything initialised the wasm backend. The caller registers kernels first and, when `ok` is false, selects
 * wasm again (single-threaded) or another backend.
 */
export async function initThreadedWasm(
  threads: number,
  attemptMs = 5000,
  attempts = 3,
): Promise<ThreadedInit> {
  if (tf.findBackend("wasm")) {
    return { ok: false, threads: 1, attempts: 0, reason: "the wasm backend was already initialised" };
  }
  const entry = (tf.engine() as Any).registryFactory.wasm;
  if (!entry) return { ok: false, threads: 1, attempts: 0, reason: "the wasm backend is not registered" };
  patchWorkerPrototype();
  const dir = Deno.makeTempDirSync({ prefix: "funmatch-wasm-threads-" });
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* already gone */ }
  });

  // Temporary patches, only while the backend starts.
  const texts = new WeakMap<Blob, string>();
  const OrigBlob = globalThis.Blob;
  const origCreate = URL.createObjectURL;
  const origCpus = os.cpus;
  class TextBlob extends OrigBlob {
    constructor(parts?: BlobPart[], opts?: BlobPropertyBag) {
      super(parts, opts);
      if (parts?.length === 1 && typeof parts[0] === "string" && /javascript/.test(opts?.type ?? "")) {
        const text = parts[0] as string;
        texts.set(this, text);
        if (Deno.env.get("FM_DEBUG")) console.error("blob", text.slice(0, 40), performance.now());
        if (text.startsWith(FACTORY_PREFIX)) {
          factoryFile = `${dir}/factory.cjs`;
          // the factory refers to the bundle's renamed requires and global; define them for the worker
          const prelude =
            'var require$$0=require("fs"),require$$1=require("path"),require$$3=require("perf_hooks"),' +
            'require$$4=require("os"),commonjsGlobal=globalThis;';
          Deno.writeTextFileSync(factoryFile, prelude + text);
        }
      }
    }
  }
  globalThis.Blob = TextBlob as typeof Blob;
  URL.createObjectURL = (obj: Blob) => {
    const text = obj instanceof OrigBlob ? texts.get(obj) : undefined;
    if (text === undefined || text.startsWith(FACTORY_PREFIX)) return origCreate(obj as Blob);
    const path = `${dir}/worker.cjs`;
    Deno.writeTextFileSync(path, patchWorkerScript(text));
    return path;
  };
  (os as Any).cpus = () => {
    const real = origCpus.call(os);
    const want = Math.max(real.length, 2 * threads);
    return Array.from({ length: want }, (_, i) => real[i % real.length]);
  };

  const reasons: string[] = [];
  try {
    tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
    tfwasm.setThreadsCount(threads);
    for (let attempt = 1; attempt <= attempts; attempt++) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        tf.setBackend("wasm").then(
          (ok) => ok ? "ok" : "setBackend returned false",
          (e) => String(e?.message ?? e),
        ),
        new Promise<string>((r) =>
          timer = setTimeout(() => r(`no answer within ${attemptMs / 1000} s`), attemptMs)
        ),
      ]);
      clearTimeout(timer);
      if (outcome === "ok") {
        const got = tfwasm.getThreadsCount();
        if (got >= threads) return { ok: true, threads: got, attempts: attempt };
        // seen in ~1 of 4 starts: the module loads but XNNPACK's pool comes up with fewer threads
        reasons.push(`the thread pool started with ${got} thread${got === 1 ? "" : "s"}`);
      } else reasons.push(outcome);
      // Typically one of the 8 pool workers never started (a Deno worker start-up race): stop them all,
      // forget the pending init and start over with a fresh module.
      for (const w of seenWorkers) w.terminate().catch(() => {});
      seenWorkers.clear();
      tf.removeBackend("wasm");
      tf.registerBackend("wasm", entry.factory, entry.priority);
    }
    tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false); // the caller falls back to one thread
    return { ok: false, threads: 1, attempts, reason: reasons.join("; ") };
  } finally {
    globalThis.Blob = OrigBlob;
    URL.createObjectURL = origCreate;
    (os as Any).cpus = origCpus;
  }
}
