// TFDS sources (lib/data/tfds.ts, the fetch stage): slices resolve as TFDS resolves them, a slice across shard
// edges becomes whole shards plus cut ones, and `deno run pipeline/01_fetch_tfrecords.ts` over a TFDS folder
// served on 127.0.0.1 writes each of the config's splits with exactly the records its slice names.
import assert from "assert";
import { decodeExampleAll, encodeExample } from "../lib/data/example.ts";
import { readTFRecords, writeTFRecordFile } from "../lib/data/tfrecord.ts";
import { parseDatasetInfo, parseSlice, planTfdsSplits, sliceRange } from "../lib/data/tfds.ts";
import { copyRepo } from "./_repo_copy.ts";

Deno.test("tfds slices: percentages round half to even like TFDS, negative bounds count from the end", () => {
  const r = (spec: string, n: number) => sliceRange(parseSlice(spec, "k"), n);
  assert.deepEqual(r("train[:90%]", 50000), [0, 45000]);
  assert.deepEqual(r("train[90%:]", 50000), [45000, 50000]);
  assert.deepEqual(r("train", 7), [0, 7]);
  assert.deepEqual(r("train[25%:]", 10), [2, 10]); // 2.5 → 2
  assert.deepEqual(r("train[:35%]", 10), [0, 4]); // 3.5 → 4
  assert.deepEqual(r("train[-3:]", 10), [7, 10]);
  assert.deepEqual(r("train[2:5]", 10), [2, 5]);
  assert.throws(
    () => parseSlice("train[a:]", "data.splits.train.tfds"),
    /data\.splits\.train\.tfds: bound "a"/,
  );
  assert.throws(() => parseSlice("train[:90%", "data.splits.train.tfds"), /is not a TFDS split/);
});

const INFO = JSON.stringify({
  name: "cifar10",
  splits: [
    { name: "train", shardLengths: ["7", "6", "7"], numBytes: "1" },
    { name: "test", shardLengths: ["5"], numBytes: "1" },
  ],
});

Deno.test("tfds plan: a slice keeps whole shards and cuts the ones at its edges", () => {
  const info = parseDatasetInfo(INFO, "dataset_info.json");
  const plan = planTfdsSplits(info, { train: "train[:60%]", validation: "train[60%:]", test: "test" });
  assert.deepEqual(plan.shards, [
    "cifar10-test.tfrecord-00000-of-00001",
    "cifar10-train.tfrecord-00000-of-00003",
    "cifar10-train.tfrecord-00001-of-00003",
    "cifar10-train.tfrecord-00002-of-00003",
  ]);
  assert.deepEqual(plan.splits.train, [
    { shard: "cifar10-train.tfrecord-00000-of-00003", from: 0, to: 7, whole: true },
    { shard: "cifar10-train.tfrecord-00001-of-00003", from: 0, to: 5, whole: false },
  ]);
  assert.deepEqual(plan.splits.validation, [
    { shard: "cifar10-train.tfrecord-00001-of-00003", from: 5, to: 6, whole: false },
    { shard: "cifar10-train.tfrecord-00002-of-00003", from: 0, to: 7, whole: true },
  ]);
  assert.throws(
    () => planTfdsSplits(info, { test: "validation" }),
    /data\.splits\.test\.tfds: dataset_info\.json has no split "validation" \(it has train, test\)/,
  );
});

/** A TFDS folder: shards whose records carry their split's global index as `label`. */
async function tfdsFolder(root: string) {
  await Deno.writeTextFile(`${root}/dataset_info.json`, INFO);
  for (const [split, lengths] of [["train", [7, 6, 7]], ["test", [5]]] as const) {
    let g = 0;
    for (const [i, n] of lengths.entries()) {
      const recs = Array.from(
        { length: n },
        () => encodeExample({ image: new Uint8Array([1, 2, 3]), label: [g++] }),
      );
      await writeTFRecordFile(
        `${root}/cifar10-${split}.tfrecord-${String(i).padStart(5, "0")}-of-0000${lengths.length}`,
        recs,
      );
    }
  }
}

async function labelsOf(dir: string): Promise<number[]> {
  const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  const out: number[] = [];
  for (const n of names) {
    for await (const r of readTFRecords(`${dir}/${n}`)) {
      out.push((decodeExampleAll(r.data, n).label as number[])[0]);
    }
  }
  return out;
}

Deno.test({
  name: "fetch stage over HTTP: a TFDS folder becomes train[:90%] / train[90%:] / test, record for record",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const cwd = await copyRepo("funmatch-tfds-");
    const served = await Deno.makeTempDir({ prefix: "funmatch-tfds-src-" });
    await tfdsFolder(served);
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
      const path = decodeURIComponent(new URL(req.url).pathname).replace(/^\/cifar10\/3\.0\.2\//, "");
      try {
        return new Response(await Deno.readFile(`${served}/${path}`));
      } catch {
        return new Response("not found", { status: 404 });
      }
    });
    const run = async (dataset: string) => {
      const r = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "pipeline/01_fetch_tfrecords.ts",
          dataset,
          "--profile",
          "smoke",
          "--source",
          `http://127.0.0.1:${server.addr.port}/cifar10/3.0.2`,
        ],
        cwd,
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: r.code, err: new TextDecoder().decode(r.stderr) };
    };
    try {
      const ok = await run("cifar10");
      assert.equal(ok.code, 0, ok.err);
      const out = `${cwd}/data/cifar10/tfrecords`;
      // 90 % of 20 = 18: shards 0 and 1 whole, shard 2 cut after 5 records
      assert.deepEqual(await labelsOf(`${out}/train`), Array.from({ length: 18 }, (_, i) => i));
      assert.deepEqual(await labelsOf(`${out}/validation`), [18, 19]);
      assert.deepEqual(await labelsOf(`${out}/test`), [0, 1, 2, 3, 4]);
      const manifest = JSON.parse(await Deno.readTextFile(`${out}/manifest.json`));
      assert.deepEqual(
        Object.fromEntries(
          Object.entries(manifest.splits).map(([k, v]) => [
            k,
            (v as { records: number }[]).map((s) => s.records),
          ]),
        ),
        { train: [7, 6, 5], validation: [2], test: [5] },
      );
      assert.match(
        ok.err,
        /fetch: train 18 records in 3 shard\(s\), validation 2 records in 1 shard\(s\), test 5 records/,
      );

      // a config without tfds: keys cannot read a TFDS folder: one sentence naming the key to add
      const yaml = (await Deno.readTextFile(`${cwd}/pipeline/datasets/cifar10.yaml`)).replace(
        /, tfds: "[^"]*"/g,
        "",
      );
      await Deno.writeTextFile(
        `${cwd}/pipeline/datasets/plain.yaml`,
        yaml.replace(/^name: cifar10$/m, "name: plain"),
      );
      const bad = await run("plain");
      assert.equal(bad.code, 1);
      assert.match(
        bad.err,
        /dataset_info\.json makes .* a TFDS dataset folder, but data\.splits\.train in pipeline\/datasets\/plain\.yaml has no tfds: key/,
      );
      await assert.rejects(Deno.stat(`${cwd}/data/plain/tfrecords`));
    } finally {
      await server.shutdown();
      await Deno.remove(cwd, { recursive: true }).catch(() => {});
      await Deno.remove(served, { recursive: true }).catch(() => {});
    }
  },
});
