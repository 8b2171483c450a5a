import assert from "assert";
import { createHash } from "node:crypto";
import { fetchDataset, hashFile } from "../lib/data/download.ts";
import { effectiveSource } from "../lib/data/source.ts";
import { readTFRecords, writeTFRecordFile } from "../lib/data/tfrecord.ts";
import { crc32c } from "../lib/data/crc32c.ts";

/** A source tree: split/shard files of pseudo-random records, plus a manifest.json with sha256 of each. */
async function makeSource(): Promise<{ root: string; files: Map<string, Uint8Array> }> {
  const root = await Deno.makeTempDir();
  const files = new Map<string, Uint8Array>();
  let seed = 1;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
  const manifest: Record<string, { file: string; bytes: number; sha256: string }[]> = {};
  for (const [split, n] of [["train", 2], ["validation", 1]] as const) {
    await Deno.mkdir(`${root}/${split}`);
    manifest[split] = [];
    for (let s = 0; s < n; s++) {
      const name = `${split}_x-${s}-20.tfrec`;
      const recs = Array.from({ length: 20 }, () => Uint8Array.from({ length: 3000 }, rnd));
      await writeTFRecordFile(`${root}/${split}/${name}`, recs);
      const bytes = await Deno.readFile(`${root}/${split}/${name}`);
      files.set(`${split}/${name}`, bytes);
      manifest[split].push({
        file: `${split}/${name}`,
        bytes: bytes.length,
        sha256: createHash("sha256").update(bytes).digest("hex"),
      });
    }
  }
  await Deno.writeTextFile(`${root}/manifest.json`, JSON.stringify({ splits: manifest }));
  return { root, files };
}

const src = await makeSource();
const SPLITS = { train: {}, validation: {} };
const retry = { attempts: 4, baseDelayMs: 5, idleTimeoutMs: 2000 };

/** Test server: serves src (and a GCS-like API under /storage/v1 and /bucket/), honours Range, injects faults. */
const faults = {
  dropAfter: new Map<string, number>(), // path → bytes sent before the connection is dropped (once)
  fail503: new Map<string, number>(), // path → number of 503 answers first
  corrupt: new Set<string>(), // paths served with one flipped byte
  noManifest: false,
};
const log: { path: string; range: string | null; status: number }[] = [];
function gcsItem(name: string, bytes: Uint8Array) {
  const crc = new Uint8Array(4);
  new DataView(crc.buffer).setUint32(0, crc32c(bytes), false);
  return {
    name,
    size: String(bytes.length),
    md5Hash: createHash("md5").update(bytes).digest("base64"),
    crc32c: btoa(String.fromCharCode(...crc)),
  };
}
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
  const url = new URL(req.url);
  const range = req.headers.get("range");
  const note = (status: number) => log.push({ path: url.pathname, range, status });
  if (url.pathname.startsWith("/storage/v1/b/bucket/o")) {
    const prefix = url.searchParams.get("prefix") ?? "";
    const items = [...src.files].filter(([k]) => `pre/${k}`.startsWith(prefix)).map(([k, v]) =>
      gcsItem(`pre/${k}`, v)
    );
    note(200);
    return Response.json({ items });
  }
  const key = decodeURIComponent(url.pathname.replace(/^\/(bucket\/pre\/|https\/)/, ""));
  if (key === "manifest.json") {
    if (faults.noManifest) return note(404), new Response("no", { status: 404 });
    note(200);
    return new Response(Deno.readFileSync(`${src.root}/manifest.json`));
  }
  let body = src.files.get(key);
  if (!body) return note(404), new Response("not found", { status: 404 });
  const f503 = faults.fail503.get(key) ?? 0;
  if (f503 > 0) {
    faults.fail503.set(key, f503 - 1);
    note(503);
    return new Response("busy", { status: 503 });
  }
  if (faults.corrupt.has(key)) {
    body = body.slice();
    body[body.length >> 1] ^= 0x40;
  }
  let start = 0;
  const m = range ? /bytes=(\d+)-/.exec(range) : null;
  if (m) start = Number(m[1]);
  const part = body.subarray(start);
  const headers: Record<string, string> = { "content-length": String(part.length) };
  if (m) headers["content-range"] = `bytes ${start}-${body.length - 1}/${body.length}`;
  const status = m ? 206 : 200;
  note(status);
  const drop = faults.dropAfter.get(key);
  if (drop !== undefined) {
    faults.dropAfter.delete(key);
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(part.slice(0, drop));
      },
      pull(c) {
        c.error(new Error("dropped by test"));
      },
    });
    return new Response(stream, { status, headers });
  }
  return new Response(part.slice(), { status, headers });
});
const base = `http://127.0.0.1:${server.addr.port}`;

function reset() {
  faults.dropAfter.clear();
  faults.fail503.clear();
  faults.corrupt.clear();
  faults.noManifest = false;
  log.length = 0;
}

async function assertSameAsSource(dest: string) {
  for (const [k, v] of src.files) assert.deepEqual(await Deno.readFile(`${dest}/${k}`), v, k);
  const leftovers = [...Deno.readDirSync(`${dest}/train`)].map((e) => e.name).filter((n) =>
    /part|tmp/.test(n)
  );
  assert.deepEqual(leftovers, []);
}

Deno.test("local directory source: copies, verifies, writes the manifest; rerun keeps verified shards", async () => {
  const dest = await Deno.makeTempDir();
  const m = await fetchDataset({ source: src.root, dest, splits: SPLITS, link: false });
  await assertSameAsSource(dest);
  assert.equal(m.splits.train.length, 2);
  assert.deepEqual(m.splits.train[0].records, 20);
  assert.equal(m.splits.train[0].file, "train/train_x-0-20.tfrec");
  const disk = JSON.parse(await Deno.readTextFile(`${dest}/manifest.json`));
  assert.deepEqual(disk.splits, m.splits);
  assert.equal(
    disk.splits.validation[0].sha256,
    (await hashFile(`${dest}/validation/validation_x-0-20.tfrec`)).sha256,
  );
  const ino = (await Deno.stat(`${dest}/train/train_x-0-20.tfrec`)).ino;
  // a stale shard in dest is removed; verified shards are kept as they are
  await Deno.writeFile(`${dest}/train/train_old-9-1.tfrec`, new Uint8Array(3));
  await fetchDataset({ source: `file://${src.root}`, dest, splits: SPLITS, link: false });
  assert.equal((await Deno.stat(`${dest}/train/train_x-0-20.tfrec`)).ino, ino);
  assert.ok(!(await Deno.stat(`${dest}/train/train_old-9-1.tfrec`).catch(() => null)));
  await Deno.remove(dest, { recursive: true });
});

Deno.test("a missing source directory is one sentence naming the path", async () => {
  await assert.rejects(
    () => fetchDataset({ source: "/no/such/dir", dest: "/tmp/x-never", splits: SPLITS }),
    /^Error: Data source directory \/no\/such\/dir does not exist\.$/,
  );
});

Deno.test("https: a dropped connection resumes with Range; 503s are retried; rerun downloads nothing", async () => {
  reset();
  const dest = await Deno.makeTempDir();
  faults.dropAfter.set("train/train_x-0-20.tfrec", 25_000);
  faults.fail503.set("train/train_x-1-20.tfrec", 2);
  await fetchDataset({ source: `${base}/https`, dest, splits: SPLITS, retry });
  await assertSameAsSource(dest);
  const t0 = log.filter((l) => l.path.endsWith("train_x-0-20.tfrec"));
  assert.equal(t0.length, 2);
  assert.equal(t0[0].range, null);
  assert.equal(t0[1].range, "bytes=25000-");
  assert.equal(t0[1].status, 206);
  const t1 = log.filter((l) => l.path.endsWith("train_x-1-20.tfrec")).map((l) => l.status);
  assert.deepEqual(t1, [503, 503, 200]);
  log.length = 0;
  await fetchDataset({ source: `${base}/https`, dest, splits: SPLITS, retry });
  assert.deepEqual(log.map((l) => l.path), ["/https/manifest.json"]);
  await Deno.remove(dest, { recursive: true });
});

Deno.test("a checksum mismatch is refused and nothing is left in place", async () => {
  reset();
  const dest = await Deno.makeTempDir();
  faults.corrupt.add("validation/validation_x-0-20.tfrec");
  await assert.rejects(
    () => fetchDataset({ source: `${base}/https`, dest, splits: SPLITS, retry }),
    /validation_x-0-20\.tfrec failed verification \(sha256 [0-9a-f]+, expected [0-9a-f]+\); the download was discarded/,
  );
  assert.deepEqual([...Deno.readDirSync(`${dest}/validation`)], []);
  await Deno.remove(dest, { recursive: true });
});

Deno.test("without published checksums the CRC pass refuses a flipped byte, naming file and offset", async () => {
  reset();
  faults.noManifest = true;
  faults.corrupt.add("validation/validation_x-0-20.tfrec");
  const dest = await Deno.makeTempDir();
  const splits = { validation: { shards: ["validation_x-0-20.tfrec"] } };
  await assert.rejects(
    () => fetchDataset({ source: `${base}/https`, dest, splits, retry }),
    /validation_x-0-20\.tfrec: (data|length) CRC mismatch .* at byte offset \d+ \(downloaded from http/,
  );
  assert.deepEqual([...Deno.readDirSync(`${dest}/validation`)], []);
  await assert.rejects(
    () => fetchDataset({ source: `${base}/https`, dest, splits: SPLITS, retry }),
    /has no manifest\.json \(HTTP 404\); list the shards/,
  );
  await Deno.remove(dest, { recursive: true });
});

Deno.test("gs:// listing with md5 verifies; a corrupted object is refused", async () => {
  reset();
  Deno.env.set("FUNMATCH_GCS_ENDPOINT", base);
  try {
    const dest = await Deno.makeTempDir();
    const m = await fetchDataset({ source: "gs://bucket/pre", dest, splits: SPLITS, retry });
    await assertSameAsSource(dest);
    assert.equal(m.splits.train.length, 2);
    assert.ok(log.some((l) => l.path === "/storage/v1/b/bucket/o"));
    faults.corrupt.add("train/train_x-1-20.tfrec");
    await Deno.remove(`${dest}/train/train_x-1-20.tfrec`);
    await assert.rejects(
      () => fetchDataset({ source: "gs://bucket/pre", dest, splits: SPLITS, retry }),
      /train_x-1-20\.tfrec failed verification \(md5 .*, expected .*; crc32c .*, expected .*\)/,
    );
    assert.ok(!(await Deno.stat(`${dest}/train/train_x-1-20.tfrec`).catch(() => null)));
    await Deno.remove(dest, { recursive: true });
  } finally {
    Deno.env.delete("FUNMATCH_GCS_ENDPOINT");
  }
});

Deno.test("effectiveSource: --source over FUNMATCH_DATA_MIRROR over the config", () => {
  const prev = Deno.env.get("FUNMATCH_DATA_MIRROR");
  try {
    Deno.env.delete("FUNMATCH_DATA_MIRROR");
    assert.equal(effectiveSource("gs://a"), "gs://a");
    Deno.env.set("FUNMATCH_DATA_MIRROR", "/mirror");
    assert.equal(effectiveSource("gs://a"), "/mirror");
    assert.equal(effectiveSource("gs://a", "https://b"), "https://b");
  } finally {
    if (prev === undefined) Deno.env.delete("FUNMATCH_DATA_MIRROR");
    else Deno.env.set("FUNMATCH_DATA_MIRROR", prev);
  }
});

Deno.test("sanity: source shards are valid TFRecords", async () => {
  let n = 0;
  for await (const _ of readTFRecords(`${src.root}/train/train_x-0-20.tfrec`)) n++;
  assert.equal(n, 20);
});

globalThis.addEventListener("unload", () => {
  Deno.removeSync(src.root, { recursive: true });
});
Deno.test("stop server", async () => {
  await server.shutdown();
});
