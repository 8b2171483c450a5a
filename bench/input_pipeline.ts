/**
 * Input pipeline throughput and memory: can decoding + augmentation keep the trainer fed?
 *
 * The target is ≥3× what training consumes (training runs ~300–600 img/s at 32 px on the CPU profile), with peak RSS
 * over a full pass of CIFAR-10 train below 1 GB (memory must be bounded by prefetch, not by the dataset). Each case
 * runs in its own subprocess so the peak RSS (`VmHWM`) belongs to that case alone; Workers are threads, so it
 * includes them.
 *
 * Datasets: `data/<ds>/tfrecords/train` when fetched, else `$FUNMATCH_BENCH_DATA/<ds>/train`, else
 * `../shared/datasets/<ds>/train` beside the checkout; a case whose data is absent is reported as skipped.
 *
 * Run alone: `deno run -A bench/input_pipeline.ts`.
 * @module
 */

import { InputPipeline, openSplit } from "../lib/data/pipeline.ts";

/** The shared real datasets beside the checkout; FUNMATCH_SHARED_DATASETS overrides. */
const SHARED = Deno.env.get("FUNMATCH_SHARED_DATASETS") ??
  new URL("../../shared/datasets", import.meta.url).pathname.replace(/\/$/, "");

interface Case {
  name: string;
  dataset: string;
  spec: string;
  batch: number;
  workers: number;
  /** null: one full pass; else this many batches (repeating). */
  batches: number | null;
}

const CASES: Case[] = [
  {
    name: "cifar10 32px train aug (cpu profile), full pass",
    dataset: "cifar10",
    spec: "decode|inception_crop(32, area_min=25)|flip_lr|value_range(-1,1)",
    batch: 128,
    workers: 1,
    batches: null,
  },
  {
    name: "cifar10 32px train aug, 2 workers, 120 batches",
    dataset: "cifar10",
    spec: "decode|inception_crop(32, area_min=25)|flip_lr|value_range(-1,1)",
    batch: 128,
    workers: 2,
    batches: 120,
  },
  {
    name: "pets37 128px train aug",
    dataset: "pets37-sample",
    spec: "decode|inception_crop(128)|flip_lr|value_range(-1,1)",
    batch: 32,
    workers: 1,
    batches: 24,
  },
  {
    name: "pets37 128px eval",
    dataset: "pets37-sample",
    spec: "decode|resize_small(160)|central_crop(128)|value_range(-1,1)",
    batch: 32,
    workers: 1,
    batches: 24,
  },
];

const keys = { image: "image", label: "class" };

function findSplit(ds: string): string | null {
  const tries = [`data/${ds === "pets37-sample" ? "pets37" : ds}/tfrecords/train`];
  const env = Deno.env.get("FUNMATCH_BENCH_DATA");
  if (env) tries.push(`${env}/${ds}/train`);
  tries.push(`${SHARED}/${ds}/train`);
  for (const t of tries) {
    try {
      if (Deno.statSync(t).isDirectory) return t;
    } catch { /* try the next */ }
  }
  return null;
}

function peakRssMiB(): number {
  const s = Deno.readTextFileSync("/proc/self/status");
  const m = /VmHWM:\s+(\d+) kB/.exec(s);
  return m ? Number(m[1]) / 1024 : Deno.memoryUsage().rss / 2 ** 20;
}

/** Runs one case in this process; returns its measurements. */
async function runCase(c: Case, dir: string) {
  const index = await openSplit(dir, keys);
  const p = new InputPipeline({
    index,
    keys,
    batchSize: c.batch,
    preprocess: c.spec,
    seed: 0,
    shuffle: true,
    repeat: c.batches !== null,
    dropRemainder: false,
    workers: c.workers,
  });
  // the first batch includes worker start-up and JIT warm-up: time from its arrival
  let b = await p.next();
  let images = 0;
  const t0 = performance.now();
  for (let i = 1; c.batches === null || i < c.batches; i++) {
    b = await p.next();
    if (!b) break;
    images += b.shape[0];
  }
  const seconds = (performance.now() - t0) / 1000;
  await p.close();
  return { images, seconds, imgPerSec: images / seconds, peakRssMiB: peakRssMiB() };
}

/** Runs every case in a subprocess; returns a markdown table and the rows. */
export async function benchInputPipeline(): Promise<{ markdown: string; rows: object[] }> {
  const rows: Record<string, unknown>[] = [];
  for (const [i, c] of CASES.entries()) {
    const dir = findSplit(c.dataset);
    if (!dir) {
      rows.push({ ...c, skipped: `no ${c.dataset} train split found` });
      continue;
    }
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        new URL("../deno.json", import.meta.url).pathname,
        new URL(import.meta.url).pathname,
        "--child",
        String(i),
        dir,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
    if (!out.success) {
      rows.push({ ...c, dir, error: `subprocess exited with ${out.code}` });
      continue;
    }
    rows.push({ ...c, dir, ...JSON.parse(text) });
  }
  const lines = [
    "| case | spec | batch | workers | images | img/s | peak RSS (MiB) |",
    "|---|---|---:|---:|---:|---:|---:|",
  ];
  const code = (s: string) => `\`${s.replaceAll("|", "\\|")}\``;
  for (const r of rows as any[]) {
    if (r.skipped || r.error) {
      lines.push(
        `| ${r.name} | ${code(r.spec)} | ${r.batch} | ${r.workers} | – | ${r.skipped ?? r.error} | – |`,
      );
    } else {
      lines.push(
        `| ${r.name} | ${code(r.spec)} | ${r.batch} | ${r.workers} | ${r.images} | ${
          r.imgPerSec.toFixed(0)
        } | ${r.peakRssMiB.toFixed(0)} |`,
      );
    }
  }
  const markdown =
    `### Input pipeline\n\n${lines.join("\n")}\n\nMachine: ${navigator.hardwareConcurrency} cores. ` +
    `Target: ≥2000 img/s at 32 px (3× training), peak RSS < 1024 MiB over a full CIFAR-10 train pass.\n`;
  return { markdown, rows };
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--child");
  if (i >= 0) {
    const c = CASES[Number(Deno.args[i + 1])];
    console.log(JSON.stringify(await runCase(c, Deno.args[i + 2])));
  } else {
    const { markdown } = await benchInputPipeline();
    console.log(markdown);
  }
}
