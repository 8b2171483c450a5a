import { sharedDatasets } from "./_repo_copy.ts";
import assert from "assert";
import sharp from "sharp";
import { decodeJpeg, jpegSize } from "../lib/data/jpeg.ts";
import { decodeImage } from "../lib/data/decode.ts";
import { decodeExample } from "../lib/data/example.ts";
import { readTFRecords } from "../lib/data/tfrecord.ts";

async function firstImages(path: string, n: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const r of readTFRecords(path)) {
    out.push(decodeExample(r.data, { image: "image", label: "class" }, path).image);
    if (out.length >= n) break;
  }
  return out;
}

Deno.test("the TypeScript JPEG decoder matches sharp bit for bit on real CIFAR-10 and pets shards", async () => {
  const cifar = await firstImages(
    `${sharedDatasets}/cifar10/validation/validation_cifar10-0-5000.tfrec`,
    200,
  );
  const pets = await firstImages(`${sharedDatasets}/pets37-sample/test/test_pets37-0-111.tfrec`, 3);
  for (const [i, img] of [...cifar, ...pets].entries()) {
    const mine = decodeJpeg(img);
    assert.ok(mine, `image ${i} fell back`);
    const ref = await sharp(img).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([mine.height, mine.width], [ref.info.height, ref.info.width]);
    assert.ok(Buffer.from(mine.data).equals(ref.data), `image ${i} differs from sharp`);
  }
  assert.deepEqual(jpegSize(cifar[0]), { width: 32, height: 32 });
});

Deno.test("synthetic JPEGs in every supported sampling match sharp; progressive falls back", async () => {
  const w = 21, h = 13; // odd sizes exercise the edge handling of the upsampler
  const rgb = new Uint8Array(w * h * 3).map((_, i) => (i * 37 + (i % 7) * 50) % 256);
  const img = sharp(rgb, { raw: { width: w, height: h, channels: 3 } });
  for (const chromaSubsampling of ["4:4:4", "4:2:0"]) {
    const jpg = new Uint8Array(await img.clone().jpeg({ quality: 90, chromaSubsampling }).toBuffer());
    const mine = decodeJpeg(jpg)!;
    const ref = await sharp(jpg).raw().toBuffer();
    assert.ok(Buffer.from(mine.data).equals(ref), chromaSubsampling);
  }
  const gray = new Uint8Array(await img.clone().grayscale().jpeg().toBuffer());
  const g = decodeJpeg(gray)!;
  const gref = await sharp(gray).toColourspace("srgb").raw().toBuffer();
  assert.ok(Buffer.from(g.data).equals(gref), "grayscale");
  const prog = new Uint8Array(await img.clone().jpeg({ progressive: true }).toBuffer());
  assert.equal(decodeJpeg(prog), null);
  const viaSharp = await decodeImage(prog, "prog");
  assert.deepEqual([viaSharp.height, viaSharp.width], [h, w]);
  // a corrupt small JPEG is named
  const bad = new Uint8Array(await img.clone().jpeg().toBuffer());
  bad.fill(0xff, bad.length >> 1, (bad.length >> 1) + 40);
  await assert.rejects(() => decodeImage(bad, "rec @ 7"), /rec @ 7: the (JPEG )?image/);
});
