import assert from "assert";
import { crc32c, maskedCrc32c } from "../lib/data/crc32c.ts";
import {
  countAndVerify,
  readRecordAt,
  readTFRecords,
  RECORD_OVERHEAD,
  TFRecordError,
  writeTFRecordFile,
} from "../lib/data/tfrecord.ts";

const enc = new TextEncoder();

Deno.test("crc32c known vectors (RFC 3720 / iSCSI) and chaining", () => {
  assert.equal(crc32c(enc.encode("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  const inc = Uint8Array.from({ length: 32 }, (_, i) => i);
  assert.equal(crc32c(inc), 0x46dd794e);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  const a = enc.encode("hello "), b = enc.encode("world, a longer tail");
  const ab = new Uint8Array([...a, ...b]);
  assert.equal(crc32c(b, crc32c(a)), crc32c(ab));
  // masked value of the 8-byte little-endian length 0 (the header of an empty record)
  const c = crc32c(new Uint8Array(8));
  assert.equal(maskedCrc32c(new Uint8Array(8)), ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0);
});

function records(n: number): Uint8Array[] {
  // sizes cross the reader's buffer boundary (bufferSize 64 in the test below) and include an empty record
  return Array.from(
    { length: n },
    (_, i) => Uint8Array.from({ length: (i * 37) % 150 }, (_, j) => (i + j) & 255),
  );
}

Deno.test("write then stream back, random access and count", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/a.tfrec`;
  const recs = records(20);
  const offsets = await writeTFRecordFile(path, recs);
  const got: { data: Uint8Array; offset: number }[] = [];
  for await (const r of readTFRecords(path, { bufferSize: 64 })) got.push(r);
  assert.equal(got.length, 20);
  for (let i = 0; i < 20; i++) {
    assert.deepEqual(got[i].data, recs[i]);
    assert.equal(got[i].offset, offsets[i]);
  }
  assert.deepEqual(await readRecordAt(path, offsets[7]), recs[7]);
  const total = recs.reduce((s, r) => s + r.length + RECORD_OVERHEAD, 0);
  assert.deepEqual(await countAndVerify(path), { records: 20, bytes: total });
  assert.equal((await Deno.stat(path)).size, total);
  // no temporary left behind
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["a.tfrec"]);
  await Deno.remove(dir, { recursive: true });
});

async function expectError(path: string, re: RegExp): Promise<TFRecordError> {
  try {
    for await (const _ of readTFRecords(path)) { /* drain */ }
  } catch (e) {
    assert.ok(e instanceof TFRecordError, String(e));
    assert.match(e.message, re);
    return e;
  }
  throw new Error("expected a TFRecordError");
}

Deno.test("a truncated shard and flipped bytes are named with file and offset", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/b.tfrec`;
  const recs = records(5);
  const offsets = await writeTFRecordFile(path, recs);
  const good = await Deno.readFile(path);

  // truncated tail: cut 3 bytes from the last record
  await Deno.writeFile(path, good.subarray(0, good.length - 3));
  let e = await expectError(path, /truncated record/);
  assert.equal(e.offset, offsets[4]);
  assert.ok(e.message.includes(path) && e.message.includes(`byte offset ${offsets[4]}`));

  // truncated inside a header
  await Deno.writeFile(path, good.subarray(0, offsets[3] + 5));
  e = await expectError(path, /truncated record header/);
  assert.equal(e.offset, offsets[3]);

  // flipped byte in record 2's payload → data CRC
  const bad = good.slice();
  bad[offsets[2] + 12 + 3] ^= 0x10;
  await Deno.writeFile(path, bad);
  e = await expectError(path, /data CRC mismatch/);
  assert.equal(e.offset, offsets[2]);
  assert.ok(
    e.message.includes(`${path}: data CRC mismatch`) && e.message.includes(`byte offset ${offsets[2]}`),
  );
  await assert.rejects(() => readRecordAt(path, offsets[2]), /data CRC mismatch/);

  // flipped byte in record 3's length → length CRC
  const bad2 = good.slice();
  bad2[offsets[3]] ^= 0x01;
  await Deno.writeFile(path, bad2);
  e = await expectError(path, /length CRC mismatch/);
  assert.equal(e.offset, offsets[3]);
  await assert.rejects(() => countAndVerify(path), /length CRC mismatch .* at byte offset/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a missing file is one clear sentence", async () => {
  await assert.rejects(async () => {
    for await (const _ of readTFRecords("/nonexistent/x.tfrec")) { /* */ }
  }, /TFRecord file \/nonexistent\/x.tfrec does not exist/);
});
