/**
 * The main job end to end, as a user runs it: a TFRecord set written here and served from a local HTTP
 * server, `deno task pipeline` over all six stages, a second run that does nothing, and edits that rerun
 * exactly what they touch. It runs in a copy of the repository so the edits never touch the real tree.
 */
import assert from "assert";
import sharp from "sharp";
import { encodeExample } from "../lib/data/example.ts";
import { writeTFRecordFile } from "../lib/data/tfrecord.ts";
import { copyRepo } from "./_repo_copy.ts";

const CLASSES = 3;

/** A small JPEG whose colour says its class, with per-image noise so no two are alike. */
async function photo(label: number, i: number): Promise<Uint8Array> {
  const w = 20, h = 16;
  const px = new Uint8Array(w * h * 3);
  let s = (label * 7919 + i * 104729 + 1) >>> 0;
  for (let k = 0; k < px.length; k++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const base = (k % 3) === label ? 200 : 40;
    px[k] = Math.max(0, Math.min(255, base + ((s >>> 24) % 50) - 25));
  }
  return new Uint8Array(await sharp(px, { raw: { width: w, height: h, channels: 3 } }).jpeg().toBuffer());
}

/** `{split}/{split}_e2e-0-{n}.tfrec` under `dir`, n images a split, labels round-robin. */
async function writeDataset(dir: string, sizes: Record<string, number>): Promise<Record<string, string[]>> {
  const shards: Record<string, string[]> = {};
  for (const [split, n] of Object.entries(sizes)) {
    await Deno.mkdir(`${dir}/${split}`, { recursive: true });
    const records: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      records.push(encodeExample({ image: await photo(i % CLASSES, i), class: [i % CLASSES] }));
    }
    const name = `${split}/${split}_e2e-0-${n}.tfrec`;
    await writeTFRecordFile(`${dir}/${name}`, records);
    shards[split] = [name];
  }
  return shards;
}

function serve(root: string): { url: string; close: () => Promise<void>; hits: string[] } {
  const hits: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    hits.push(path);
    try {
      return new Response(await Deno.readFile(`${root}${path}`));
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown(), hits };
}

function config(source: string, shards: Record<string, string[]>): string {
  const split = (s: string) =>
    `{ pattern: "*.tfrec", shards: [${shards[s].map((x) => `"${x.split("/").pop()}"`).join(", ")}] }`;
  const pre = `"decode|resize(16)|flip_lr|value_range(-1,1)"`;
  return `name: e2e
source: ${source}
num_classes: ${CLASSES}
classes: [red, green, blue]
seed: 0
backend: wasm
data:
  keys: { image: image, label: class }
  splits:
    train: ${split("train")}
    validation: ${split("validation")}
    test: ${split("test")}
  workers: 0
teacher:
  arch: "bit-basic:root=4,widths=8-8,units=1-1,strides=2-2"
  image_size: 16
  train:
    preprocess: ${pre}
    optimizer: { name: sgd, lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 0.0005 }
    schedule: { kind: warmup_cosine, warmup_steps: 1 }
    batch_size: 8
    steps: 4
    eval_every: 2
    checkpoint_every: 2
freeze: { consistency_images: 6, crop: "decode|inception_crop(16)|value_range(-1,1)" }
student: { arch: "bit-basic:root=4,widths=4-8,units=1-1,strides=2-2", image_size: 16 }
distill:
  modes: [function_matching]
  preprocess: "decode|inception_crop(16)|flip_lr|value_range(-1,1)"
  temperature: 2
  optimizer: { name: adam, lr: 0.01, weight_decay: 0.0001, clip_norm: 1.0 }
  schedule: { kind: warmup_cosine, warmup_steps: 1 }
  batch_size: 8
  steps: 4
  eval_every: 2
  checkpoint_every: 2
  teacher_runtime: tfjs
eval: { preprocess: "decode|resize(16)|value_range(-1,1)", batch_size: 16, latency_repeats: 2 }
published: null
profiles:
  smoke: {}
`;
}

async function pipeline(cwd: string, ...args: string[]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "lib/runner/cli.ts", ...args],
    cwd,
    env: { NO_COLOR: "1", FUNMATCH_CACHE: `${cwd}/.cache` },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

interface Lock {
  stages: Record<string, { outs: Record<string, unknown> }>;
  last_run: { stages: Record<string, "ran" | "fresh"> };
}

async function lastRun(cwd: string): Promise<Record<string, string>> {
  const lock = JSON.parse(await Deno.readTextFile(`${cwd}/data/e2e/pipeline.lock`)) as Lock;
  return lock.last_run.stages;
}

Deno.test({
  name: "e2e: six stages over HTTP, a no-op rerun, and edits rerun exactly what they touch",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const cwd = await copyRepo();
    const served = await Deno.makeTempDir({ prefix: "funmatch-e2e-src-" });
    const shards = await writeDataset(served, { train: 24, validation: 6, test: 9 });
    const server = serve(served);
    try {
      await Deno.writeTextFile(`${cwd}/pipeline/datasets/e2e.yaml`, config(server.url, shards));

      // (1) the whole job, downloading over HTTP
      const first = await pipeline(cwd, "run", "e2e", "--profile", "smoke");
      assert.equal(first.code, 0, first.out);
      for (const s of ["train", "validation", "test"]) {
        assert.ok(server.hits.some((h) => h.includes(`/${s}_e2e-0-`)), `${s} shard was not downloaded`);
      }
      assert.deepEqual(Object.values(await lastRun(cwd)), ["ran", "ran", "ran", "ran", "ran", "ran"]);
      const report = await Deno.readTextFile(`${cwd}/reports/e2e.md`);
      const metrics = JSON.parse(await Deno.readTextFile(`${cwd}/data/e2e/eval/metrics.json`));
      assert.equal(metrics.test_images, 9);
      const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
      assert.ok(report.includes(pct(metrics.teacher.top1)), "teacher top-1 missing from the report");
      assert.ok(
        report.includes(pct(metrics.students.function_matching.agreement_top1)),
        "agreement missing from the report",
      );

      // (2) again: nothing runs
      const t0 = performance.now();
      const second = await pipeline(cwd, "run", "e2e", "--profile", "smoke");
      const seconds = (performance.now() - t0) / 1000;
      assert.equal(second.code, 0, second.out);
      assert.match(second.out, /nothing to run/);
      assert.deepEqual(Object.values(await lastRun(cwd)), [
        "fresh",
        "fresh",
        "fresh",
        "fresh",
        "fresh",
        "fresh",
      ]);
      assert.ok(seconds < 20, `a no-op run took ${seconds.toFixed(1)} s`);

      // (3) a comment in a module only distill imports: distill reruns; its student comes out
      // byte-identical (same seed, same backend), so evaluate and report stay fresh
      await Deno.writeTextFile(`${cwd}/lib/train/distill.ts`, "\n// a comment\n", { append: true });
      const status = await pipeline(cwd, "status", "e2e", "--profile", "smoke");
      assert.match(status.out, /distill[^\n]*stale/);
      assert.match(status.out, /lib\/train\/distill\.ts/);
      const third = await pipeline(cwd, "run", "e2e", "--profile", "smoke");
      assert.equal(third.code, 0, third.out);
      assert.deepEqual(await lastRun(cwd), {
        fetch: "fresh",
        teacher: "fresh",
        freeze: "fresh",
        distill: "ran",
        evaluate: "fresh",
        report: "fresh",
      });

      // a change that does change the student reruns distill, evaluate and report, and nothing else
      const fourth = await pipeline(
        cwd,
        "run",
        "e2e",
        "--profile",
        "smoke",
        "--set",
        "distill.temperature=3",
      );
      assert.equal(fourth.code, 0, fourth.out);
      assert.deepEqual(await lastRun(cwd), {
        fetch: "fresh",
        teacher: "fresh",
        freeze: "fresh",
        distill: "ran",
        evaluate: "ran",
        report: "ran",
      });

      // Adding a mode trains only the new student: the function-matching one is reused, byte for byte.
      const fm = await Deno.readFile(`${cwd}/data/e2e/students/function_matching/weights.bin`);
      const fifth = await pipeline(
        cwd,
        "run",
        "e2e",
        "--profile",
        "smoke",
        "--set",
        "distill.temperature=3",
        "--set",
        "distill.modes=[function_matching,labels]",
      );
      assert.equal(fifth.code, 0, fifth.out);
      assert.match(fifth.out, /distill: function_matching: already trained with this code, data and config/);
      assert.match(fifth.out, /distill: labels: student/);
      assert.doesNotMatch(fifth.out, /distill: function_matching: student/);
      assert.deepEqual(await Deno.readFile(`${cwd}/data/e2e/students/function_matching/weights.bin`), fm);
      assert.ok((await Deno.stat(`${cwd}/data/e2e/students/labels/weights.bin`)).size > 0);
    } finally {
      await server.close();
      await Deno.remove(cwd, { recursive: true }).catch(() => {});
      await Deno.remove(served, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "e2e: a missing source folder, an unknown dataset and a corrupt shard each fail in one sentence, leaving nothing",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const cwd = await copyRepo();
    const served = await Deno.makeTempDir({ prefix: "funmatch-e2e-bad-" });
    try {
      const shards = await writeDataset(served, { train: 12, validation: 3, test: 3 });
      await Deno.writeTextFile(`${cwd}/pipeline/datasets/e2e.yaml`, config(served, shards));
      const errorLines = (out: string) => out.split("\n").filter((l) => l.startsWith("error:"));
      const leftovers = async () => {
        const names: string[] = [];
        try {
          for await (const e of Deno.readDir(`${cwd}/data/e2e`)) names.push(e.name);
        } catch { /* no data folder at all: nothing left behind */ }
        return names.filter((n) => !["logs", "downloads", "pipeline.lock", ".statcache.json"].includes(n));
      };

      const missing = await pipeline(cwd, "run", "e2e", "--profile", "smoke", "--source", `${served}/nope`);
      assert.notEqual(missing.code, 0);
      assert.match(errorLines(missing.out)[0], new RegExp(`${served}/nope`));
      assert.deepEqual(await leftovers(), []);

      const unknown = await pipeline(cwd, "run", "no-such-set", "--profile", "smoke");
      assert.notEqual(unknown.code, 0);
      assert.match(
        errorLines(unknown.out)[0],
        /unknown dataset "no-such-set": .*pipeline\/datasets\/no-such-set\.yaml/,
      );

      // flip one byte inside the first record's payload of the test shard
      const bad = `${served}/${shards.test[0]}`;
      const bytes = await Deno.readFile(bad);
      bytes[40] ^= 0xff;
      await Deno.writeFile(bad, bytes);
      const corrupt = await pipeline(cwd, "run", "e2e", "--profile", "smoke");
      assert.notEqual(corrupt.code, 0);
      const line = errorLines(corrupt.out)[0];
      assert.match(line, /test_e2e-0-3\.tfrec/);
      assert.match(line, /offset \d+|byte \d+/);
      assert.deepEqual(await leftovers(), []);
      const lock = JSON.parse(await Deno.readTextFile(`${cwd}/data/e2e/pipeline.lock`).catch(() => "{}"));
      assert.equal(lock.stages?.fetch, undefined, "a failed fetch must not be recorded as done");

      // a mistyped --source after a good fetch fails the same way but keeps the good TFRecords
      bytes[40] ^= 0xff;
      await Deno.writeFile(bad, bytes);
      assert.equal((await pipeline(cwd, "run", "e2e", "fetch", "--profile", "smoke")).code, 0);
      const manifest = await Deno.readTextFile(`${cwd}/data/e2e/tfrecords/manifest.json`);
      const typo = await pipeline(
        cwd,
        "run",
        "e2e",
        "fetch",
        "--profile",
        "smoke",
        "--source",
        `${served}/nope`,
      );
      assert.notEqual(typo.code, 0);
      assert.equal(await Deno.readTextFile(`${cwd}/data/e2e/tfrecords/manifest.json`), manifest);
      assert.deepEqual(await leftovers(), ["tfrecords"]);
    } finally {
      await Deno.remove(cwd, { recursive: true }).catch(() => {});
      await Deno.remove(served, { recursive: true }).catch(() => {});
    }
  },
});
