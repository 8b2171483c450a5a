/**
 * Compiles the native kernels (./source.ts) with the machine's C compiler and loads them through Deno's FFI.
 *
 * Why: TF.js's wasm backend runs convolutions on XNNPACK at 128-bit SIMD, ~20 GFLOP/s on one core here; the
 * same maths compiled for the host (`-march=native`: AVX2/AVX-512 FMA) runs 2–4× faster and on more than one
 * core. Nothing is downloaded: the library is built once per source, compiler and CPU, and cached
 * (`$FUNMATCH_CACHE/native`, default `~/.cache/funmatch/native`), written to a temporary name and renamed.
 * Where no compiler works, `loadNative` says why and the caller keeps the wasm kernels.
 *
 * `FUNMATCH_NATIVE=0` turns it off; `CC` picks the compiler (default: the first of cc, gcc, clang that runs).
 *
 * @example
 * ```ts
 * const r = await loadNative();
 * if (r.ok) r.lib.symbols.fm_conv2d(x, w, y, geometry, 2);
 * else console.error(`native kernels unavailable: ${r.reason}`);
 * ```
 * @module
 */
import { existsSync } from "../../fs.ts";
import { sha256Text } from "../../runner/hash.ts";
import { cacheDir } from "../../cache_dir.ts";
import { NATIVE_SOURCE } from "./source.ts";

const SYMBOLS = {
  fm_conv2d: { parameters: ["buffer", "buffer", "buffer", "buffer", "i32"], result: "void" },
  fm_conv2d_dfilter: { parameters: ["buffer", "buffer", "buffer", "buffer", "i32"], result: "void" },
  fm_conv2d_dinput: { parameters: ["buffer", "buffer", "buffer", "buffer", "i32"], result: "void" },
  fm_gn_relu: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer", "buffer", "f32", "i32"],
    result: "void",
  },
  fm_gn_relu_grad: {
    parameters: [
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "i32",
    ],
    result: "void",
  },
  fm_abi_version: { parameters: [], result: "i32" },
} as const;

/** The loaded library. */
export type NativeLib = Deno.DynamicLibrary<typeof SYMBOLS>;

/** Outcome of {@link loadNative}: the library and what built it, or the reason there is none. */
export type NativeLoad =
  | { ok: true; lib: NativeLib; path: string; compiler: string; built: boolean }
  | { ok: false; reason: string };

/** `-ffp-contract=fast` is spelled out so fused multiply-adds (and so the numbers) do not hang on a default. */
const FLAGS = ["-O3", "-march=native", "-ffp-contract=fast", "-std=gnu11", "-fPIC", "-shared", "-pthread"];
const ABI_VERSION = 2;

let loaded: Promise<NativeLoad> | null = null;

/** Builds (or finds in the cache) and opens the native kernel library, once per process. */
export function loadNative(): Promise<NativeLoad> {
  loaded ??= _load();
  return loaded;
}

async function _load(): Promise<NativeLoad> {
  const off = Deno.env.get("FUNMATCH_NATIVE");
  if (off !== undefined && /^(0|false|off|no)$/i.test(off)) {
    return { ok: false, reason: "turned off by FUNMATCH_NATIVE" };
  }
  if (Deno.build.os === "windows") return { ok: false, reason: "not built on Windows" };
  const compiler = await _findCompiler();
  if (!compiler) return { ok: false, reason: "no C compiler found (tried $CC, cc, gcc, clang)" };
  const dir = cacheDir("native") ?? (Deno.env.get("TMPDIR") ?? "/tmp") + "/funmatch-native";
  const key = sha256Text(
    [NATIVE_SOURCE, compiler.version, FLAGS.join(" "), Deno.build.target, await _cpuFlags()].join("\n"),
  ).slice(0, 16);
  const ext = Deno.build.os === "darwin" ? "dylib" : "so";
  const path = `${dir}/funmatch-kernels-${key}.${ext}`;
  let built = false;
  if (!existsSync(path)) {
    const err = await _compile(compiler.cmd, dir, path);
    if (err) return { ok: false, reason: err };
    built = true;
  }
  let lib: NativeLib;
  try {
    lib = Deno.dlopen(path, SYMBOLS);
  } catch (e) {
    return { ok: false, reason: `${path} does not load (${(e as Error).message.split("\n")[0]})` };
  }
  if (lib.symbols.fm_abi_version() !== ABI_VERSION) {
    lib.close();
    return { ok: false, reason: `${path} has a different ABI version than this code` };
  }
  return { ok: true, lib, path, compiler: compiler.version, built };
}

async function _compile(cc: string, dir: string, path: string): Promise<string | null> {
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (e) {
    return `cannot create ${dir} (${(e as Error).message})`;
  }
  const tag = `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const src = `${dir}/.tmp-${tag}.c`;
  const tmp = `${path}.tmp-${tag}`;
  try {
    await Deno.writeTextFile(src, NATIVE_SOURCE);
    const r = await new Deno.Command(cc, {
      args: [...FLAGS, "-o", tmp, src],
      stdout: "null",
      stderr: "piped",
    })
      .output();
    if (r.code !== 0) {
      const msg = new TextDecoder().decode(r.stderr).trim().split("\n").slice(0, 3).join(" / ");
      return `${cc} failed to compile the kernels (${msg || `exit ${r.code}`})`;
    }
    await Deno.rename(tmp, path);
    return null;
  } catch (e) {
    return `building ${path} failed (${(e as Error).message})`;
  } finally {
    await Deno.remove(src).catch(() => {});
    await Deno.remove(tmp).catch(() => {});
  }
}

async function _findCompiler(): Promise<{ cmd: string; version: string } | null> {
  const env = Deno.env.get("CC");
  for (const cmd of [...(env ? [env] : []), "cc", "gcc", "clang"]) {
    try {
      const r = await new Deno.Command(cmd, { args: ["--version"], stdout: "piped", stderr: "null" })
        .output();
      if (r.code === 0) return { cmd, version: new TextDecoder().decode(r.stdout).split("\n")[0].trim() };
    } catch { /* not installed */ }
  }
  return null;
}

/** The CPU's feature flags: `-march=native` code built on one CPU may not run on another sharing the cache. */
async function _cpuFlags(): Promise<string> {
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    return /^flags\s*:(.*)$/m.exec(info)?.[1].trim() ?? "";
  } catch {
    return "";
  }
}
