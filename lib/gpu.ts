/**
 * GPU probes that load nothing heavy: no TensorFlow.js, so the runner and the fetch stage can choose a
 * default profile without pulling the backends and kernels into their code graph (and their hashes).
 * @module
 */
export async function gpuDevicePresent(): Promise<boolean> {
  for (const p of ["/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/version"]) {
    try {
      await Deno.stat(p);
      return true;
    } catch { /* absent */ }
  }
  return false;
}

/**
 * Cheap probe: is a CUDA GPU usable by tfjs-node-gpu here? True when an NVIDIA device is present and
 * tfjs-node-gpu's native binding is installed. Loads nothing.
 *
 * @example
 * ```ts
 * const profile = (await gpuAvailable()) ? "paper" : "cpu";
 * ```
 */
export async function gpuAvailable(): Promise<boolean> {
  if (!await gpuDevicePresent()) return false;
  try {
    const { createRequire } = await import("node:module");
    const req = createRequire(import.meta.url);
    const pkgJson = req.resolve("@tensorflow/tfjs-node-gpu/package.json");
    const dir = pkgJson.slice(0, -"package.json".length);
    for await (const e of Deno.readDir(`${dir}lib`)) {
      if (!e.isDirectory || !e.name.startsWith("napi-v")) continue;
      try {
        await Deno.stat(`${dir}lib/${e.name}/tfjs_binding.node`);
        return true;
      } catch { /* not built */ }
    }
  } catch { /* package not installed */ }
  return false;
}
