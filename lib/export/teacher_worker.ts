/**
 * Worker side of the ONNX teacher runtime: hosts one ORT session (intra-op 1 thread) off the main thread.
 *
 * Why it exists: onnxruntime-node's `session.run()` computes synchronously on the calling JS thread, so on
 * the main thread it cannot overlap with TF.js work. In a Deno Worker it runs on the second core while the
 * student trains on the first (research/onnxruntime-on-deno.md §3: the teacher then adds ~20 ms per step
 * instead of ~130). Protocol (all buffers transferred, never copied):
 *   main → worker  { type: "init", model: Uint8Array, threads }       worker → main { type: "ready" } | error
 *   main → worker  { type: "run", id, buf: ArrayBuffer, shape }       worker → main { type: "out", id, logits }
 *   worker → main  { type: "error", id?, message }
 */
/// <reference lib="deno.worker" />
import { createSession, runLogits } from "./ort.ts";
import type { OrtSession } from "./ort.ts";

/** Messages the main thread sends. */
export type ToWorker =
  | { type: "init"; model: Uint8Array; threads: number }
  | { type: "run"; id: number; buf: ArrayBuffer; shape: number[] };

/** Messages the worker sends back. */
export type FromWorker =
  | { type: "ready" }
  | { type: "out"; id: number; logits: ArrayBuffer }
  | { type: "error"; id?: number; message: string };

let session: OrtSession | null = null;
// Runs are serialised: ORT's run() blocks this thread anyway, and ordering keeps ids simple.
let queue: Promise<void> = Promise.resolve();

function reply(m: FromWorker, transfer: Transferable[] = []): void {
  self.postMessage(m, transfer);
}

self.onmessage = (e: MessageEvent<ToWorker>) => {
  const m = e.data;
  if (m.type === "init") {
    queue = queue.then(async () => {
      try {
        session = await createSession(m.model, { threads: m.threads });
        reply({ type: "ready" });
      } catch (err) {
        reply({ type: "error", message: `teacher_worker: ${(err as Error).message}` });
      }
    });
  } else if (m.type === "run") {
    queue = queue.then(async () => {
      try {
        if (session === null) throw new Error("run before a successful init");
        const logits = await runLogits(session, new Float32Array(m.buf), m.shape);
        reply({ type: "out", id: m.id, logits: logits.buffer as ArrayBuffer }, [
          logits.buffer as ArrayBuffer,
        ]);
      } catch (err) {
        reply({ type: "error", id: m.id, message: `teacher_worker run ${m.id}: ${(err as Error).message}` });
      }
    });
  }
};
