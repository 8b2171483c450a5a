/**
 * Identity without a copy on wasm.
 *
 * Why: the tfjs engine clones every tensor a kernel saves for its gradient (`saveTensorsForBackwardMode` →
 * Identity), and wasm's Identity copies the buffer. Tensors are immutable (variables swap buffers on assign,
 * nothing writes into an existing buffer), so sharing the buffer with a reference count — what the cpu
 * backend's Identity already does — is safe and saves one full copy of every saved activation per step.
 */
import type { Attrs, TI } from "./_scope.ts";

// deno-lint-ignore no-explicit-any
type AnyBackend = any;

/** Identity: inputs {x}; returns a handle to the same buffer with its reference count raised. */
export function identityShared(_backendName: string) {
  return ({ inputs, backend }: { inputs: Record<string, TI>; backend: AnyBackend; attrs?: Attrs }): TI => {
    const { x } = inputs;
    if (x.dtype === "string" || typeof backend.incRef !== "function") {
      throw new Error(
        "lib/kernels/identity.ts: shared Identity needs a numeric tensor and a backend with incRef.",
      );
    }
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
}
