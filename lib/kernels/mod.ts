/**
 * Training kernels for the tfjs wasm and cpu backends.
 *
 * Why: stock tfjs 4.22 cannot train conv nets on wasm (no Conv2DBackpropFilter, no depthwise gradients, a
 * MaxPoolGrad that returns wrong values, a slow Conv2DBackpropInput), and the cpu backend's conv gradients run
 * at ~0.01 GFLOP/s. `registerTrainingKernels` replaces those kernels with versions built from each backend's
 * fast forward kernels (see conv_grad.ts, pool_grad.ts, depthwise_grad.ts). lib/backend.ts calls it before
 * selecting the backend; tests call it directly to compare against the stock cpu kernels.
 */
import * as tf from "@tensorflow/tfjs";
import { conv2dBackpropFilter, conv2dBackpropInput } from "./conv_grad.ts";
import { maxPoolGrad } from "./pool_grad.ts";
import { depthwiseBackpropFilter, depthwiseBackpropInput } from "./depthwise_grad.ts";
import { identityShared } from "./identity.ts";
import { nativeKernels } from "./native/kernels.ts";
import type { NativeLib } from "./native/build.ts";

export { conv2dBackpropFilter, conv2dBackpropInput } from "./conv_grad.ts";
export { maxPoolGrad } from "./pool_grad.ts";
export { depthwiseBackpropFilter, depthwiseBackpropInput } from "./depthwise_grad.ts";
export { identityShared } from "./identity.ts";

/** Backends this module knows how to fix. */
export type TrainableBackend = "wasm" | "cpu";

type Factory = (backendName: string) => unknown;

const KERNELS: Record<TrainableBackend, [string, Factory][]> = {
  wasm: [
    ["Conv2DBackpropFilter", conv2dBackpropFilter],
    ["Conv2DBackpropInput", conv2dBackpropInput],
    ["MaxPoolGrad", maxPoolGrad],
    ["DepthwiseConv2dNativeBackpropFilter", depthwiseBackpropFilter],
    ["DepthwiseConv2dNativeBackpropInput", depthwiseBackpropInput],
    ["Identity", identityShared],
  ],
  // cpu: only the conv gradients (its pooling/depthwise gradients are correct and not the bottleneck)
  cpu: [
    ["Conv2DBackpropFilter", conv2dBackpropFilter],
    ["Conv2DBackpropInput", conv2dBackpropInput],
  ],
};

/**
 * Register our training kernels for `backendName`, replacing stock ones. Idempotent. Returns the kernel names.
 *
 * @example
 * ```ts
 * registerTrainingKernels("wasm");
 * await tf.setBackend("wasm");
 * ```
 */
export function registerTrainingKernels(backendName: TrainableBackend): string[] {
  const list = KERNELS[backendName];
  if (!list) throw new Error(`lib/kernels/mod.ts: no training kernels for backend '${backendName}'.`);
  for (const [kernelName, make] of list) {
    const key = `${backendName}/${kernelName}`;
    if (!STOCK.has(key)) STOCK.set(key, tf.getKernel(kernelName, backendName) ?? null);
    if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel({ kernelName, backendName, kernelFunc: make(backendName) as tf.KernelFunc });
  }
  return list.map(([k]) => k);
}

/**
 * Replace the wasm backend's Conv2D and our conv gradient kernels with the native ones (./native), and add the
 * fused GroupNorm+ReLU kernels lib/model/norm.ts looks for; all run with
 * `threads` threads. Call after `registerTrainingKernels("wasm")`; `restoreStockKernels("wasm")` undoes both.
 */
export function registerNativeKernels(lib: NativeLib, threads: number): string[] {
  const kernels = nativeKernels(lib, threads);
  for (const [kernelName, kernelFunc] of Object.entries(kernels)) {
    const key = `wasm/${kernelName}`;
    if (!STOCK.has(key)) STOCK.set(key, tf.getKernel(kernelName, "wasm") ?? null);
    if (tf.getKernel(kernelName, "wasm")) tf.unregisterKernel(kernelName, "wasm");
    tf.registerKernel({ kernelName, backendName: "wasm", kernelFunc });
  }
  for (const k of Object.keys(kernels)) NATIVE_NAMES.add(k);
  return Object.keys(kernels);
}

/** Kernels only registerNativeKernels replaces (restoreStockKernels must put them back too). */
const NATIVE_NAMES = new Set<string>();

/**
 * Put back the kernels that `registerTrainingKernels` replaced (stock ones, or none where the backend had
 * none). Tests use it to compute references with the stock cpu kernels.
 */
export function restoreStockKernels(backendName: TrainableBackend): void {
  const names = [
    ...(KERNELS[backendName] ?? []).map(([k]) => k),
    ...(backendName === "wasm" ? NATIVE_NAMES : []),
  ];
  for (const kernelName of names) {
    const key = `${backendName}/${kernelName}`;
    if (!STOCK.has(key)) continue;
    if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
    const cfg = STOCK.get(key);
    if (cfg) tf.registerKernel(cfg);
    STOCK.delete(key);
  }
}

/** Stock kernel configs saved at first replacement (null: the backend had none). */
const STOCK = new Map<string, tf.KernelConfig | null>();
