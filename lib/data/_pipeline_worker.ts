/**
 * Worker side of the input pipeline: decodes and augments batches off the training thread.
 *
 * Messages in: `{ type: "init", files, keys, spec, concurrency, cacheBytes }` once, then `{ type: "job", job }`.
 * Messages out: `{ type: "batch", id, x, labels }` (buffers transferred) or `{ type: "error", id, message }`.
 * Jobs are processed one at a time in arrival order.
 * @module
 */

import { type BatchJob, BatchMaker } from "./_batch.ts";

const scope = self as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(msg: unknown, transfer?: Transferable[]): void;
};

let maker: BatchMaker | null = null;
let chain: Promise<void> = Promise.resolve();

scope.onmessage = (e: MessageEvent) => {
  const msg = e.data;
  if (msg.type === "init") {
    try {
      maker = new BatchMaker(msg.files, msg.keys, msg.spec, msg.concurrency, msg.cacheBytes);
    } catch (err) {
      scope.postMessage({ type: "error", id: -1, message: (err as Error).message });
    }
    return;
  }
  if (msg.type === "job") {
    const job = msg.job as BatchJob;
    chain = chain.then(async () => {
      try {
        if (!maker) throw new Error("input pipeline worker used before init");
        const r = await maker.make(job);
        scope.postMessage({ type: "batch", id: r.id, x: r.x, labels: r.labels }, [
          r.x.buffer as ArrayBuffer,
          r.labels.buffer as ArrayBuffer,
        ]);
      } catch (err) {
        scope.postMessage({ type: "error", id: job.id, message: (err as Error).message });
      }
    });
    return;
  }
  if (msg.type === "close") {
    maker?.close();
    scope.postMessage({ type: "closed" });
  }
};
