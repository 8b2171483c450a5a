import assert from "assert";
import sharp from "sharp";
import { encodeExample } from "../lib/data/example.ts";
import { writeTFRecordFile } from "../lib/data/tfrecord.ts";
import { type Batch, InputPipeline, type InputPipelineOptions, openSplit } from "../lib/data/pipeline.ts";

const keys = { image: "image", label: "class" };
const SPEC = "decode|inception_crop(8, area_min=25)|flip_lr|value_range(-1,1)";

/** A split of `n` 12×12 JPEGs over three shards; record i has label i % 5 and a colour that encodes i. */
async function makeSplit(n: number): Promise<string> {
  const dir = await Deno.makeTempDir();
  const recs: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const px = new Uint8Array(12 * 12 * 3).map((_, k) => (k % 3 === 0 ? i * 6 : (k * 13 + i * 29) % 256));
    const jpg = await sharp(px, { raw: { width: 12, height: 12, channels: 3 } }).png().toBuffer();
    recs.push(encodeExample({ image: new Uint8Array(jpg), class: [i % 5] }));
  }
  const per = Math.ceil(n / 3);
  for (let s = 0; s < 3; s++) {
    await writeTFRecordFile(`${dir}/train_t-${s}-${per}.tfrec`, recs.slice(s * per, (s + 1) * per));
  }
  return dir;
}

const dir = await makeSplit(30);

function opts(over: Partial<InputPipelineOptions>): Promise<InputPipelineOptions> {
  return openSplit(dir, keys, { cache: false }).then((index) => ({
    index,
    keys,
    batchSize: 4,
    preprocess: SPEC,
    seed: 1,
    shuffle: true,
    repeat: true,
    dropRemainder: true,
    workers: 0,
    ...over,
  }));
}

async function take(p: InputPipeline, n: number): Promise<Batch[]> {
  const out: Batch[] = [];
  for (let i = 0; i < n; i++) {
    const b = await p.next();
    if (!b) break;
    out.push(b);
  }
  return out;
}

Deno.test("openSplit indexes every record in natural shard order with labels", async () => {
  const idx = await openSplit(dir, keys, { cache: false });
  assert.equal(idx.size, 30);
  assert.deepEqual(idx.files.map((f) => f.slice(f.lastIndexOf("/") + 1)), [
    "train_t-0-10.tfrec",
    "train_t-1-10.tfrec",
    "train_t-2-10.tfrec",
  ]);
  assert.deepEqual(Array.from(idx.labels.subarray(0, 7)), [0, 1, 2, 3, 4, 0, 1]);
  assert.equal(idx.file[10], 1);
  assert.equal(idx.offset[10], 0);
  await assert.rejects(() => openSplit(`${dir}/nope`, keys), /Split directory .*\/nope does not exist\./);
});

Deno.test("same seed → same batches (workers or not); different seed → different", async () => {
  const a = new InputPipeline(await opts({}));
  const b = new InputPipeline(await opts({ workers: 1 }));
  const c = new InputPipeline(await opts({ seed: 2 }));
  const [ba, bb, bc] = [await take(a, 3), await take(b, 3), await take(c, 3)];
  await Promise.all([a.close(), b.close(), c.close()]);
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(ba[i].shape, [4, 8, 8, 3]);
    assert.deepEqual(ba[i].x, bb[i].x);
    assert.deepEqual(ba[i].ids, bb[i].ids);
    assert.deepEqual(ba[i].labels, bb[i].labels);
    for (let k = 0; k < 4; k++) assert.equal(ba[i].labels[k], ba[i].ids[k] % 5);
  }
  assert.notDeepEqual(ba.map((b) => Array.from(b.ids)), bc.map((b) => Array.from(b.ids)));
  assert.ok(ba[0].x.every((v) => v >= -1 && v <= 1));
});

Deno.test("resume from state() gives identical next batches, across an epoch boundary", async () => {
  const full = new InputPipeline(await opts({ batchSize: 7 }));
  const all = await take(full, 7); // 49 examples: crosses into epoch 1
  await full.close();
  const first = new InputPipeline(await opts({ batchSize: 7 }));
  await take(first, 4);
  const st = JSON.parse(JSON.stringify(first.state()));
  assert.deepEqual(st, { epoch: 0, position: 28 });
  await first.close();
  const resumed = new InputPipeline(await opts({ batchSize: 7, start: st }));
  const rest = await take(resumed, 3);
  assert.deepEqual(resumed.state(), { epoch: 1, position: 19 });
  await resumed.close();
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(rest[i].ids, all[4 + i].ids);
    assert.deepEqual(rest[i].x, all[4 + i].x);
  }
  // each epoch is a permutation: epoch 0 covers all 30 records exactly once
  const epoch0 = all.flatMap((b) => Array.from(b.ids)).slice(0, 30);
  assert.deepEqual([...epoch0].sort((x, y) => x - y), Array.from({ length: 30 }, (_, i) => i));
});

Deno.test("non-repeating: remainder kept or dropped, take limits records, order unshuffled", async () => {
  const keep = new InputPipeline(
    await opts({ repeat: false, dropRemainder: false, shuffle: false, batchSize: 8 }),
  );
  const kb = await take(keep, 10);
  assert.deepEqual(kb.map((b) => b.shape[0]), [8, 8, 8, 6]);
  assert.deepEqual(Array.from(kb[0].ids), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(await keep.next(), null);
  assert.deepEqual(keep.state(), { epoch: 0, position: 30 });
  await keep.close();
  const drop = new InputPipeline(await opts({ repeat: false, dropRemainder: true, batchSize: 8 }));
  assert.equal((await take(drop, 10)).length, 3);
  await drop.close();
  const small = new InputPipeline(await opts({ repeat: false, dropRemainder: false, take: 5, batchSize: 4 }));
  const sb = await take(small, 10);
  assert.deepEqual(sb.map((b) => b.shape[0]), [4, 1]);
  assert.ok(sb.every((b) => Array.from(b.ids).every((i) => i < 5)));
  await small.close();
});

Deno.test("a corrupt record fails the batch with file and offset", async () => {
  const idx = await openSplit(dir, keys, { cache: false });
  const bad = await Deno.makeTempDir();
  const bytes = await Deno.readFile(idx.files[0]);
  bytes[Number(idx.offset[2]) + 20] ^= 0xff;
  await Deno.writeFile(`${bad}/x-0-10.tfrec`, bytes);
  // index built from the good file, then the shard is swapped for the damaged one
  const index = { ...idx, files: [`${bad}/x-0-10.tfrec`, ...idx.files.slice(1)] };
  const p = new InputPipeline({ ...(await opts({})), index, shuffle: false, batchSize: 4 });
  await assert.rejects(() => p.next(), /x-0-10\.tfrec: data CRC mismatch .* at byte offset \d+/);
  await p.close();
  await Deno.remove(bad, { recursive: true });
});

globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

Deno.test("decoded-image cache: three epochs give the same batches with and without it, and its budget holds", async () => {
  // 30 records, batch 4: 22 batches ≈ three epochs, so epochs 2 and 3 are served from the cache
  const cached = new InputPipeline(await opts({ cacheBytes: 1 << 20 }));
  const plain = new InputPipeline(await opts({ cacheBytes: 0 }));
  const [a, b] = [await take(cached, 22), await take(plain, 22)];
  await Promise.all([cached.close(), plain.close()]);
  for (let i = 0; i < 22; i++) {
    assert.deepEqual(a[i].x, b[i].x, `batch ${i} differs with the cache`);
    assert.deepEqual(a[i].labels, b[i].labels);
  }
  // the budget: 12×12×3 = 432 bytes an image, room for 10 of the 30
  const { BatchMaker } = await import("../lib/data/_batch.ts");
  const idx = await openSplit(dir, keys, { cache: false });
  const maker = new BatchMaker(idx.files, keys, SPEC, 1, 10 * 432 + 100);
  const job = {
    id: 0,
    file: Int32Array.from(idx.file),
    offset: Float64Array.from(idx.offset),
    length: Int32Array.from(idx.length),
    seed: Uint32Array.from(idx.file, (_, i) => i),
  };
  const first = await maker.make(job);
  assert.equal(maker.cachedBytes, 10 * 432);
  const again = await maker.make(job);
  assert.deepEqual(again.x, first.x);
  assert.deepEqual(again.labels, first.labels);
  maker.close();
});
