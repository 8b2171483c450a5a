/**
 * Benchmark: how long `deno task status` takes on a dataset of ≥ 1 GB when every stage is fresh.
 *
 * Why it exists: DESIGN.md promises that the stat cache keeps a no-op run over gigabytes of TFRecords fast.
 * This builds (once, reused under /tmp across runs) a small repo whose three stages depend on 1 GiB of
 * TFRecord-framed shards, runs it once so the lock exists, then times an all-fresh status
 * - cold: no stat cache, every byte is read and hashed (the shards are usually in the page cache here, so
 *   this is hashing speed, not disk speed);
 * - warm: with the stat cache, one stat per file.
 * Both in-process (`pipelineStatus`, the runner's own work) and as the CLI a user runs (a fresh `deno`
 * process: startup, module load, `deno info` for the code graph, hashing, printing). Warm must stay < 1 s.
 *
 * Run alone: `deno run -A bench/status.ts` (prints the markdown); bench/main.ts calls `benchStatus()`.
 */
import { pipelineStatus, runPipeline } from "../lib/runner/pipeline.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const CLI = `${REPO}/lib/runner/cli.ts`;
const DATASET = "bench";

/** Options of {@link benchStatus}. */
export interface BenchStatusOptions {
  /** Where the bench repo lives (reused when present). Default /tmp/funmatch-bench-status. */
  dir?: string;
  /** Total shard bytes (default 1 GiB). */
  bytes?: number;
  /** Shard size (default 64 MiB). */
  shardBytes?: number;
  /** Warm CLI repetitions, the median is reported (default 3). */
  repeats?: number;
}

const MANIFEST = `# bench/status.ts: three fast stages over a big tfrecords folder
stages:
  index:
    script: pipeline/01_index.ts
    deps: [data/{dataset}/tfrecords]
    params: [seed]
    outs: [data/{dataset}/index]
  train:
    script: pipeline/02_train.ts
    deps: [data/{dataset}/tfrecords, data/{dataset}/index]
    params: [seed, train.*]
    outs: [data/{dataset}/model]
  report:
    script: pipeline/03_report.ts
    deps: [data/{dataset}/model]
    params: ["*"]
    outs: [reports/{dataset}.md]
`;

const STAGE = (out: string) =>
  `import { sizes } from "../lib/util.ts";
const ds = Deno.args[0];
const text = JSON.stringify(await sizes(\`data/\${ds}/tfrecords\`));
await Deno.mkdir(\`${out}\`.replace("{ds}", ds).split("/").slice(0, -1).join("/"), { recursive: true });
const path = \`${out}\`.replace("{ds}", ds);
await Deno.writeTextFile(path + ".tmp-" + Deno.pid, text);
await Deno.rename(path + ".tmp-" + Deno.pid, path);
`;

const FILES: Record<string, string> = {
  "pipeline/manifest.yaml": MANIFEST,
  "lib/util.ts": `export async function sizes(dir: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const split of ["train", "validation", "test"]) {
    for await (const e of Deno.readDir(\`\${dir}/\${split}\`)) out[\`\${split}/\${e.name}\`] = (await Deno.stat(\`\${dir}/\${split}/\${e.name}\`)).size;
  }
  return out;
}
`,
  "pipeline/01_index.ts": STAGE("data/{ds}/index/index.json"),
  "pipeline/02_train.ts": STAGE("data/{ds}/model/weights.bin"),
  "pipeline/03_report.ts": STAGE("reports/{ds}.md"),
};

const CONFIG = { seed: 0, train: { steps: 10, lr: 0.1 }, data: { splits: ["train", "validation", "test"] } };

/** Fills `buf` with xorshift32 noise from `seed` (incompressible, deterministic). */
function noise(buf: Uint8Array, seed: number): void {
  const u32 = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < u32.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    u32[i] = x;
  }
}

/** One shard of TFRecord framing (u64 length, u32 crc, data, u32 crc) around ~100 KB noise records. */
function shard(bytes: number, seed: number): Uint8Array {
  const buf = new Uint8Array(bytes);
  noise(buf, seed);
  const view = new DataView(buf.buffer);
  const rec = 100_000;
  for (let off = 0; off + 16 + rec <= bytes; off += 16 + rec) {
    view.setBigUint64(off, BigInt(rec), true);
    view.setUint32(off + 8, 0, true); // CRCs left zero: the runner never parses records
    view.setUint32(off + 12 + rec, 0, true);
  }
  return buf;
}

async function ensureRepo(
  dir: string,
  bytes: number,
  shardBytes: number,
): Promise<{ files: number; bytes: number }> {
  for (const [rel, text] of Object.entries(FILES)) {
    const abs = `${dir}/${rel}`;
    await Deno.mkdir(abs.slice(0, abs.lastIndexOf("/")), { recursive: true });
    let old = "";
    try {
      old = await Deno.readTextFile(abs);
    } catch { /* new */ }
    if (old !== text) await Deno.writeTextFile(abs, text);
  }
  await Deno.writeTextFile(`${dir}/resolved.json`, JSON.stringify({ config: CONFIG, profile: "cpu" }));
  const tf = `${dir}/data/${DATASET}/tfrecords`;
  const n = Math.ceil(bytes / shardBytes);
  const splits = (i: number) => (i < n - 2 ? "train" : i === n - 2 ? "validation" : "test");
  let total = 0;
  for (let i = 0; i < n; i++) {
    const split = splits(i);
    const name = `${tf}/${split}/${split}_bench-${String(i).padStart(3, "0")}-of-${n}.tfrec`;
    total += shardBytes;
    try {
      if ((await Deno.stat(name)).size === shardBytes) continue;
    } catch { /* missing */ }
    await Deno.mkdir(`${tf}/${split}`, { recursive: true });
    await Deno.writeFile(`${name}.tmp-${Deno.pid}`, shard(shardBytes, i + 1));
    await Deno.rename(`${name}.tmp-${Deno.pid}`, name);
  }
  return { files: n, bytes: total };
}

async function cliStatus(dir: string): Promise<{ wall: number; checked: number }> {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "status", DATASET, "--root", dir, "--resolved-config", `${dir}/resolved.json`],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wall = (performance.now() - t0) / 1000;
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success || !/all 3 stages fresh/.test(text)) {
    throw new Error(
      `status in ${dir} did not report all stages fresh:\n${text}${new TextDecoder().decode(out.stderr)}`,
    );
  }
  const checked = Number(/checked in ([\d.]+) s/.exec(text)?.[1] ?? NaN);
  return { wall, checked };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Times an all-fresh `status` over ≥ 1 GB, cold (no stat cache) and warm.
 *
 * @example
 * ```ts
 * const { markdown } = await benchStatus();
 * console.log(markdown);
 * ```
 */
export async function benchStatus(
  opts: BenchStatusOptions = {},
): Promise<{ markdown: string; rows: object[] }> {
  const dir = opts.dir ?? "/tmp/funmatch-bench-status";
  const want = opts.bytes ?? 1 << 30;
  const shardBytes = opts.shardBytes ?? 64 << 20;
  const repeats = opts.repeats ?? 3;
  await Deno.mkdir(dir, { recursive: true });
  const t0 = performance.now();
  const data = await ensureRepo(dir, want, shardBytes);
  const buildS = (performance.now() - t0) / 1000;
  const base = { root: dir, dataset: DATASET, config: CONFIG, profile: "cpu" };
  const quiet = { log: () => {}, stdout: () => {}, stderr: () => {} };
  const run = await runPipeline({ ...base, ...quiet });
  if (run.exitCode !== 0) throw new Error(`bench pipeline failed: ${run.failed?.message}`);
  const cacheFile = `${dir}/data/${DATASET}/.statcache.json`;
  const dropCache = () => Deno.remove(cacheFile).catch(() => {});

  const rows: Record<string, unknown>[] = [];
  const inProcess = async (label: string) => {
    const t = performance.now();
    const r = await pipelineStatus(base);
    const s = (performance.now() - t) / 1000;
    if (r.verdicts.some((v) => v.state !== "fresh")) throw new Error(`bench: expected all fresh\n${r.text}`);
    rows.push({
      case: label,
      how: "in-process pipelineStatus",
      seconds: +s.toFixed(3),
      files_hashed: r.cache.hashed,
      bytes_hashed: r.cache.bytes,
      cache_hits: r.cache.hits,
    });
  };
  await dropCache();
  await inProcess("cold (no stat cache)");
  await inProcess("warm (stat cache)");
  await dropCache();
  const cold = await cliStatus(dir);
  rows.push({
    case: "cold (no stat cache)",
    how: "CLI process",
    seconds: +cold.wall.toFixed(3),
    checked_s: cold.checked,
  });
  const warm: { wall: number; checked: number }[] = [];
  for (let i = 0; i < repeats; i++) warm.push(await cliStatus(dir));
  const warmWall = median(warm.map((w) => w.wall));
  rows.push({
    case: "warm (stat cache)",
    how: `CLI process, median of ${repeats}`,
    seconds: +warmWall.toFixed(3),
    checked_s: median(warm.map((w) => w.checked)),
  });

  const gb = (b: number) => (b / 1e9).toFixed(2);
  const lines = [
    `## Runner: all-fresh \`status\` over ${gb(data.bytes)} GB (${data.files} TFRecord shards)`,
    "",
    `Bench repo ${dir} (data ${
      buildS < 1 ? "reused" : `written in ${buildS.toFixed(1)} s`
    }); 3 stages whose deps hold the shards.`,
    "Cold hashes every byte (the shards are likely in the page cache, so this is sha256 speed); warm stats each file.",
    "",
    "| case | how | seconds | files hashed | GB hashed | cache hits |",
    "|---|---|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    const seconds = r.checked_s !== undefined ? `${r.seconds} (runner ${r.checked_s})` : `${r.seconds}`;
    lines.push(
      `| ${r.case} | ${r.how} | ${seconds} | ${r.files_hashed ?? ""} | ${
        r.bytes_hashed !== undefined ? gb(r.bytes_hashed as number) : ""
      } | ${r.cache_hits ?? ""} |`,
    );
  }
  lines.push(
    "",
    `Warm status as a user runs it: ${warmWall.toFixed(2)} s — ${
      warmWall < 1 ? "under" : "**over**"
    } the 1 s budget.`,
  );
  return { markdown: lines.join("\n"), rows };
}

if (import.meta.main) console.log((await benchStatus()).markdown);
