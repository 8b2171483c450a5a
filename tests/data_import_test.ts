import assert from "assert";
import { createHash } from "node:crypto";
import sharp from "sharp";
import { resolveConfig, resolveText } from "../lib/config/mod.ts";
import { fetchDataset } from "../lib/data/download.ts";
import { decodeExampleAll } from "../lib/data/example.ts";
import {
  allocateSplits,
  checkYaml,
  datasetYaml,
  ImportError,
  importFolder,
  PROFILES,
} from "../lib/data/import.ts";
import { InputPipeline, openSplit } from "../lib/data/pipeline.ts";
import { readTFRecords } from "../lib/data/tfrecord.ts";

const keys = { image: "image", label: "class" };
/** Every folder a test makes lives under this one, removed when the test module ends. */
const base = await Deno.makeTempDir({ prefix: "import-test-" });
globalThis.addEventListener("unload", () => Deno.removeSync(base, { recursive: true }));
const SPLITS = ["train", "validation", "test"] as const;

/** Class name → image count. Sorted order of the names is "Zebra", "cat", "dog" (code units: capitals first). */
const CLASSES: Record<string, number> = { dog: 10, cat: 12, Zebra: 15 };

async function image(w: number, h: number, seed: number, png: boolean): Promise<Uint8Array> {
  const px = new Uint8Array(w * h * 3).map((_, k) => (k * (seed % 7 + 3) + seed * 29) % 256);
  const img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
  return new Uint8Array(png ? await img.png().toBuffer() : await img.jpeg({ quality: 80 }).toBuffer());
}

/** A folder of class folders: JPEGs and PNGs of varied sizes, some nested, plus files that must be skipped. */
async function makePhotos(): Promise<{ dir: string; files: Map<string, string> }> {
  const dir = await Deno.makeTempDir({ dir: base, prefix: "photos-" });
  const files = new Map<string, string>(); // sha256 of the bytes → class
  let seed = 0;
  for (const [cls, n] of Object.entries(CLASSES)) {
    for (let i = 0; i < n; i++) {
      const sub = i % 4 === 0 ? `${dir}/${cls}/day ${i % 3}/deeper` : `${dir}/${cls}`;
      await Deno.mkdir(sub, { recursive: true });
      const bytes = await image(24 + (i % 5) * 4, 20 + (i % 3) * 6, seed++, i % 3 === 1);
      await Deno.writeFile(`${sub}/p${i}.${i % 3 === 1 ? "png" : i % 2 ? "JPG" : "jpeg"}`, bytes);
      files.set(sha(bytes), cls);
    }
  }
  await Deno.writeTextFile(`${dir}/dog/notes.txt`, "not an image");
  await Deno.writeTextFile(`${dir}/cat/.DS_Store`, "hidden");
  await Deno.mkdir(`${dir}/.thumbnails`);
  await Deno.writeTextFile(`${dir}/README`, "a file beside the class folders");
  return { dir, files };
}

function sha(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

async function tempRoot(): Promise<string> {
  return await Deno.makeTempDir({ dir: base, prefix: "root-" });
}

/** Every file under `dir` (relative path → bytes). */
async function tree(dir: string, rel = ""): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(`${dir}${rel}`)) {
    const r = `${rel}/${e.name}`;
    if (e.isDirectory) { for (const [k, v] of await tree(dir, r)) out.set(k, v); }
    else out.set(r, await Deno.readFile(`${dir}${r}`));
  }
  return out;
}

const photos = await makePhotos();
const classes = Object.keys(CLASSES).sort();

Deno.test("allocateSplits shares out round(N·f) images per split in proportion, keeping a training image per class", () => {
  // 37 images: 4 validation (quotas 1.2, 1.0, 1.5 → 1, 1, 2 by largest remainder), 4 test from what is left
  assert.deepEqual(allocateSplits([12, 10, 15], 0.1, 0.1), { validation: [1, 1, 2], test: [1, 1, 2] });
  assert.deepEqual(allocateSplits([10, 10], 0.1, 0.2), { validation: [1, 1], test: [2, 2] });
  // tiny classes: one image each may go to validation and test, never the last one
  const a = allocateSplits([2, 2, 3], 0.3, 0.3);
  for (let i = 0; i < 3; i++) assert.ok(a.validation[i] + a.test[i] <= [2, 2, 3][i] - 1);
  assert.equal(a.validation.reduce((x, y) => x + y), 2);
  assert.equal(a.test.reduce((x, y) => x + y), 2);
  assert.throws(() => allocateSplits([1, 1], 0.1, 0.1), /too few/);
});

Deno.test("import writes stratified, labelled TFRecord shards holding the original bytes and a config that resolves", async () => {
  const root = await tempRoot();
  const r = await importFolder({ folder: photos.dir, name: "mine", root, shardSize: 8, seed: 5 });
  assert.deepEqual(r.classes, classes);
  assert.equal(r.source, `${root}/data/mine/source`);
  assert.deepEqual(r.skipped, ["dog/notes.txt"]);
  // stratified: per class round(n·0.1) where possible, 4 + 4 of 37 overall
  assert.deepEqual(r.splits.validation.perClass, [2, 1, 1]); // Zebra 15 → 1.5, cat 12 → 1.2, dog 10 → 1.0
  assert.deepEqual(r.splits.test.perClass, [2, 1, 1]);
  assert.deepEqual(r.splits.train.perClass, [11, 10, 8]);
  // 4 test images for 3 classes: the importer says their accuracy will be coarse
  assert.ok(
    r.notes.some((n) => /^the test split has only 4 images \(3 classes\).*one image is 25\.0 points/.test(n)),
  );
  assert.deepEqual(
    r.splits.train.shards,
    [0, 1, 2, 3].map((i) => `train/train_mine-${i}-${i < 3 ? 8 : 5}.tfrec`),
  );
  assert.deepEqual(r.splits.validation.shards, ["validation/validation_mine-0-4.tfrec"]);

  const seen = new Set<string>();
  for (const split of SPLITS) {
    const index = await openSplit(`${r.source}/${split}`, keys, { cache: false });
    assert.equal(index.size, r.splits[split].records);
    const perClass = classes.map((_, c) => index.labels.filter((l) => l === c).length);
    assert.deepEqual(perClass, r.splits[split].perClass);
    for (const f of index.files) {
      for await (const { data } of readTFRecords(f)) {
        const ex = decodeExampleAll(data, f);
        const bytes = (ex.image as Uint8Array[])[0];
        const h = sha(bytes);
        assert.equal(photos.files.get(h), classes[(ex.class as number[])[0]], `${f}: wrong label or bytes`);
        assert.ok(!seen.has(h), `${f}: an image written twice`);
        seen.add(h);
      }
    }
  }
  assert.equal(seen.size, photos.files.size);
  // records are shuffled across classes: the first train shard is not one class
  const first = await openSplit(`${r.source}/train`, keys, { cache: false });
  assert.ok(new Set(first.labels.slice(0, 8)).size > 1);

  for (const profile of PROFILES) {
    const { config } = await resolveConfig({ dataset: "mine", root, profile });
    assert.equal(config.source, r.source);
    assert.deepEqual(config.classes, classes);
    assert.equal(config.num_classes, 3);
    assert.deepEqual(config.data.keys, keys);
    assert.equal(config.teacher.image_size, config.student.image_size);
  }
  const smoke = (await resolveConfig({ dataset: "mine", root, profile: "smoke" })).config;
  assert.equal(smoke.teacher.image_size, 24); // median short side 26 → 24 px, the tiny (cifar10) recipe
  assert.equal(smoke.teacher.arch, "d10-12");
  await decodesWithEveryRecipe("mine", root, r.source);

  // the fetch stage reads the source through the config's patterns and verifies the published sha256
  const dest = `${root}/fetched`;
  const m = await fetchDataset({ source: smoke.source, dest, splits: smoke.data.splits });
  for (const split of SPLITS) {
    assert.equal(m.splits[split].reduce((a, s) => a + s.records, 0), r.splits[split].records);
  }
  const published = JSON.parse(await Deno.readTextFile(`${r.source}/manifest.json`));
  assert.equal(published.splits.train[0].sha256, m.splits.train[0].sha256);
  assert.equal(await Deno.readTextFile(`${r.source}/classes.txt`), classes.join("\n") + "\n");
  // nothing temporary left behind
  const names = [...(await tree(root)).keys()];
  assert.ok(!names.some((n) => n.includes(".tmp-")), names.join(", "));
});

Deno.test("the same seed gives the same bytes; another seed another split", async () => {
  const a = await tempRoot(), b = await tempRoot(), c = await tempRoot();
  await importFolder({ folder: photos.dir, name: "d", root: a, seed: 1 });
  await importFolder({ folder: photos.dir, name: "d", root: b, seed: 1 });
  await importFolder({ folder: photos.dir, name: "d", root: c, seed: 2 });
  const ta = await tree(`${a}/data/d/source`), tb = await tree(`${b}/data/d/source`);
  assert.deepEqual([...ta.keys()].sort(), [...tb.keys()].sort());
  for (const [k, v] of ta) {
    if (k.endsWith(".tfrec")) assert.ok(Buffer.from(v).equals(tb.get(k)!), `${k} differs between runs`);
  }
  const ya = await Deno.readTextFile(`${a}/pipeline/datasets/d.yaml`);
  const yb = await Deno.readTextFile(`${b}/pipeline/datasets/d.yaml`);
  assert.equal(ya.replaceAll(a, "ROOT"), yb.replaceAll(b, "ROOT"));
  // another seed picks other images for validation, not just another order
  const held = async (root: string) => {
    const out = new Set<string>();
    for await (const { data } of readTFRecords(`${root}/data/d/source/validation/validation_d-0-4.tfrec`)) {
      out.add(sha((decodeExampleAll(data, "v").image as Uint8Array[])[0]));
    }
    return [...out].sort();
  };
  assert.deepEqual(await held(a), await held(b));
  assert.notDeepEqual(await held(a), await held(c), "seed 2 held out the same images as seed 1");
});

Deno.test("--image-size re-encodes every image as an N×N JPEG and sizes the profiles from it", async () => {
  const root = await tempRoot();
  const r = await importFolder({ folder: photos.dir, name: "sq", root, imageSize: 100 });
  assert.deepEqual(r.resolution, { paper: 96, cpu: 96, smoke: 64 });
  for (const split of SPLITS) {
    for (const f of (await openSplit(`${r.source}/${split}`, keys, { cache: false })).files) {
      for await (const { data } of readTFRecords(f)) {
        const bytes = (decodeExampleAll(data, f).image as Uint8Array[])[0];
        const meta = await sharp(bytes).metadata();
        assert.equal(meta.format, "jpeg");
        assert.deepEqual([meta.width, meta.height], [100, 100]);
      }
    }
  }
  const paper = (await resolveConfig({ dataset: "sq", root, profile: "paper" })).config;
  assert.equal(paper.teacher.arch, "R50x1"); // photos: the pets37 recipe
  assert.equal(paper.eval.preprocess, "decode|resize_small(120)|central_crop(96)|value_range(-1,1)");
  const smoke = (await resolveConfig({ dataset: "sq", root, profile: "smoke" })).config;
  assert.equal(smoke.student.image_size, 64);
  await decodesWithEveryRecipe("sq", root, r.source);
});

/** Every preprocess spec of every profile runs on the imported images (one batch each) at the profile's size. */
async function decodesWithEveryRecipe(name: string, root: string, source: string): Promise<void> {
  const index = await openSplit(`${source}/validation`, keys, { cache: false });
  for (const profile of PROFILES) {
    const { config } = await resolveConfig({ dataset: name, root, profile });
    const specs = [
      config.teacher.train.preprocess,
      config.freeze.crop,
      config.distill.preprocess,
      config.eval.preprocess,
    ];
    for (const preprocess of specs) {
      const p = new InputPipeline({
        index,
        keys,
        batchSize: 4,
        preprocess,
        seed: 0,
        shuffle: false,
        repeat: false,
        dropRemainder: false,
        workers: 0,
      });
      const b = await p.next();
      await p.close();
      const s = config.student.image_size;
      assert.deepEqual(b?.shape, [4, s, s, 3], `${profile}: ${preprocess}`);
    }
  }
}

Deno.test("datasetYaml sizes profiles from the image size and the split sizes (a large photo dataset)", () => {
  const text = datasetYaml({
    name: "big",
    folder: "/photos",
    source: "/repo/data/big/source",
    classes: ["a: colon", "true", "plain"],
    counts: { train: 20000, validation: 2500, test: 2500 },
    referenceSize: 500,
    seed: 0,
    val: 0.1,
    test: 0.1,
  });
  checkYaml(text, "big.yaml", "big");
  const at = (profile: string) => resolveText(text, "big.yaml", { dataset: "big", profile }).config;
  assert.deepEqual(at("paper").classes, ["a: colon", "true", "plain"]); // quoted where YAML would misread them
  assert.equal(at("paper").teacher.image_size, 128);
  assert.equal(at("paper").distill.steps, Math.ceil((1000 * 20000) / 512));
  assert.equal(at("cpu").teacher.image_size, 96);
  assert.equal(at("cpu").distill.steps, 3000); // 60 epochs would be 18,750: capped for a 2-core machine
  assert.equal(at("cpu-ablations").distill.steps, 1000);
  assert.deepEqual(at("cpu-ablations").distill.modes, ["function_matching", "fixed_teacher", "labels"]);
  assert.deepEqual(at("smoke").data.take, { train: 1024, validation: 256, test: 512 });
  assert.equal(at("smoke").distill.steps, 120);
  assert.ok(text.split("\n").every((l) => l.length <= 110), "lines fit the repo's width");
});

async function refusal(fn: () => Promise<unknown>, re: RegExp): Promise<string> {
  const e = await fn().then(() => null, (e) => e as Error);
  assert.ok(e instanceof ImportError, `expected an ImportError, got ${e}`);
  assert.match(e.message, re);
  assert.ok(!e.message.includes("\n"), "one sentence");
  return e.message;
}

Deno.test("refusals: missing folder, one class, a class without images, unreadable images, an existing config", async () => {
  const root = await tempRoot();
  const go = (folder: string, extra = {}) => () => importFolder({ folder, name: "bad", root, ...extra });
  await refusal(go(`${root}/nope`), /The folder .*\/nope does not exist\./);

  const one = await Deno.makeTempDir({ dir: base });
  await Deno.mkdir(`${one}/cat`);
  await Deno.writeFile(`${one}/cat/a.jpg`, await image(16, 16, 1, false));
  await refusal(go(one), /has 1 class folder\(s\) \(cat\); an import needs at least 2/);

  await Deno.mkdir(`${one}/dog/sub`, { recursive: true });
  await Deno.writeTextFile(`${one}/dog/sub/readme.txt`, "x");
  await refusal(go(one), /class folder .*\/dog holds no JPEG or PNG images.*dog\/sub\/readme\.txt/);

  for (let i = 0; i < 4; i++) {
    await Deno.writeFile(`${one}/dog/d${i}.png`, await image(16, 16, i, true));
    await Deno.writeFile(`${one}/cat/c${i}.jpg`, await image(16, 16, i + 9, false));
  }
  // a JPEG cut short (small JPEGs otherwise go through the lenient TypeScript decoder), then a non-image
  const good = await image(40, 30, 3, false);
  await Deno.writeFile(`${one}/dog/truncated.jpg`, good.subarray(0, good.length >> 1));
  await refusal(go(one), /dog\/truncated\.jpg.*could not be decoded/);
  await Deno.remove(`${one}/dog/truncated.jpg`);
  await Deno.writeTextFile(`${one}/cat/fake.png`, "GIF89a...");
  await refusal(go(one), /The image .*cat\/fake\.png is neither a JPEG nor a PNG/);
  await refusal(go(one, { imageSize: 32 }), /cat\/fake\.png is neither a JPEG nor a PNG/);
  // no partial output from any refusal
  await assert.rejects(Deno.stat(`${root}/pipeline/datasets/bad.yaml`));
  await assert.rejects(Deno.stat(`${root}/data/bad/source`));
  assert.deepEqual([...(await tree(root)).keys()], []);
  await Deno.remove(`${one}/cat/fake.png`);

  await importFolder({ folder: one, name: "bad", root, val: 0.2, test: 0.2 });
  await refusal(go(one), /bad\.yaml already exists; choose another name or pass --force/);
  const r = await importFolder({ folder: one, name: "bad", root, val: 0.2, test: 0.2, force: true, seed: 9 });
  assert.equal(r.splits.train.records, 5);

  await refusal(go(one, { name: "../x" }), /dataset name "\.\.\/x"/);
  await refusal(go(one, { val: 0 }), /--val must be a fraction/);
  await refusal(go(one, { val: 0.5, test: 0.5 }), /leave nothing for training/);
});

Deno.test("the CLI imports as a subprocess and refuses with one line and exit 1", async () => {
  const root = await tempRoot();
  const cli = new URL("../lib/data/import_cli.ts", import.meta.url).pathname;
  const config = new URL("../deno.json", import.meta.url).pathname;
  const run = async (...args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", config, cli, ...args, "--root", root],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  };
  const ok = await run(
    photos.dir,
    "cli",
    "--seed",
    "5",
    "--shard-size",
    "8",
    "--val",
    "0.1",
    "--test",
    "0.1",
  );
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /imported cli: 37 images of 3 classes → train 29 \/ validation 4 \/ test 4/);
  // the same split as the library call with the same options
  const idx = await openSplit(`${root}/data/cli/source/validation`, keys, { cache: false });
  assert.deepEqual(classes.map((_, c) => idx.labels.filter((l) => l === c).length), [2, 1, 1]);
  const again = await run(photos.dir, "cli");
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^import: The dataset config .*cli\.yaml already exists; .*--force/);
  const usage = await run(photos.dir);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /expected a folder and a dataset name/);
  const bad = await run(photos.dir, "cli2", "--val", "lots");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--val expects a number, got "lots"/);
});

Deno.test("datasetYaml: a tiny dataset's cpu profile still trains longer than its smoke profile", () => {
  const text = datasetYaml({
    name: "tiny",
    folder: "/photos",
    source: "/repo/data/tiny/source",
    classes: ["a", "b", "c"],
    counts: { train: 10, validation: 1, test: 1 },
    referenceSize: 64,
    seed: 0,
    val: 0.1,
    test: 0.1,
  });
  const at = (profile: string) => resolveText(text, "tiny.yaml", { dataset: "tiny", profile }).config;
  assert.ok(at("cpu").teacher.train.steps > at("smoke").teacher.train.steps);
  assert.ok(at("cpu").distill.steps > at("smoke").distill.steps);
});
