import { sharedDatasets } from "./_repo_copy.ts";
import assert from "assert";
import { decodeExample, decodeExampleAll, encodeExample } from "../lib/data/example.ts";
import { readTFRecords } from "../lib/data/tfrecord.ts";

const keys = { image: "image", label: "class" };

Deno.test("encode/decode round trip with int64 labels and float features", () => {
  const img = Uint8Array.from([255, 216, 255, 1, 2, 3]);
  const b = encodeExample({ image: img, class: [36], probs: new Float32Array([0.25, 0.5]) });
  const ex = decodeExample(b, keys, "mem");
  assert.deepEqual(ex.image, img);
  assert.equal(ex.label, 36);
  const all = decodeExampleAll(b, "mem");
  assert.deepEqual(all.probs, [0.25, 0.5]);
  const big = decodeExample(encodeExample({ image: img, class: [2 ** 40] }), keys, "mem");
  assert.equal(big.label, 2 ** 40);
  // deterministic bytes regardless of key order
  assert.deepEqual(encodeExample({ class: [1], image: img }), encodeExample({ image: img, class: [1] }));
});

Deno.test("missing key and wrong type are clear errors naming the record", () => {
  const img = new Uint8Array([1, 2]);
  assert.throws(
    () => decodeExample(encodeExample({ image: img, label: [1] }), keys, "train.tfrec @ 120"),
    /train\.tfrec @ 120: feature "class" \(label\) is missing; the Example has keys: image, label\./,
  );
  assert.throws(
    () => decodeExample(encodeExample({ image: [3], class: [1] }), keys, "r"),
    /feature "image" \(image\) is int64_list, expected a bytes_list/,
  );
  assert.throws(
    () => decodeExample(encodeExample({ image: img, class: new Float32Array([1]) }), keys, "r"),
    /feature "class" \(label\) is float_list, expected an int64_list/,
  );
  assert.throws(
    () => decodeExample(new Uint8Array([0xff, 0xff, 0xff]), keys, "r9"),
    /r9: record is not a valid/,
  );
});

Deno.test("every record of pets37-sample has an image and a label; 10 per class over all splits", async () => {
  const root = `${sharedDatasets}/pets37-sample`;
  const counts = new Map<number, number>();
  const perSplit: Record<string, number> = {};
  for (const split of ["train", "validation", "test"]) {
    for (const e of [...Deno.readDirSync(`${root}/${split}`)].sort((a, b) => a.name.localeCompare(b.name))) {
      const path = `${root}/${split}/${e.name}`;
      for await (const { data, offset } of readTFRecords(path)) {
        const ex = decodeExample(data, keys, `${path} @ ${offset}`);
        assert.equal(ex.image[0], 0xff); // JPEG SOI
        assert.equal(ex.image[1], 0xd8);
        counts.set(ex.label, (counts.get(ex.label) ?? 0) + 1);
        perSplit[split] = (perSplit[split] ?? 0) + 1;
      }
    }
  }
  assert.deepEqual(perSplit, { train: 222, validation: 37, test: 111 });
  assert.equal(counts.size, 37);
  for (let c = 0; c < 37; c++) assert.equal(counts.get(c), 10, `class ${c}`);
});
