import assert from "assert";
import type { RgbImage } from "../lib/data/decode.ts";
import { crop, parsePreprocess, resizeArea, runImageOps } from "../lib/data/preprocess.ts";
import { Rng } from "../lib/rng.ts";

/**
 * The area resize as first written (arrays of taps, column pass pixel by pixel): the reference the optimised
 * `resizeArea` must equal bit for bit.
 */
function resizeAreaReference(img: RgbImage, outH: number, outW: number): RgbImage {
  if (img.height === outH && img.width === outW) return img;
  const axis = (inSize: number, outSize: number) => {
    const s = inSize / outSize;
    const idx: number[][] = [], wts: number[][] = [];
    for (let i = 0; i < outSize; i++) {
      const a = i * s, b = (i + 1) * s;
      const I: number[] = [], Wt: number[] = [];
      for (let j = Math.floor(a); j < Math.min(Math.ceil(b), inSize); j++) {
        const cov = Math.min(b, j + 1) - Math.max(a, j);
        if (cov > 1e-9) {
          I.push(j);
          Wt.push(cov / s);
        }
      }
      idx.push(I);
      wts.push(Wt);
    }
    return { idx, wts };
  };
  const ax = axis(img.width, outW), ay = axis(img.height, outH);
  const tmp = new Float32Array(img.height * outW * 3);
  const src = img.data;
  for (let y = 0; y < img.height; y++) {
    const row = y * img.width * 3;
    for (let j = 0; j < outW; j++) {
      const I = ax.idx[j], Wt = ax.wts[j];
      let r = 0, g = 0, b = 0;
      for (let k = 0; k < I.length; k++) {
        const p = row + I[k] * 3, wk = Wt[k];
        r += src[p] * wk;
        g += src[p + 1] * wk;
        b += src[p + 2] * wk;
      }
      const q = (y * outW + j) * 3;
      tmp[q] = r;
      tmp[q + 1] = g;
      tmp[q + 2] = b;
    }
  }
  const out = new Uint8Array(outH * outW * 3);
  const rowLen = outW * 3;
  for (let i = 0; i < outH; i++) {
    const I = ay.idx[i], Wt = ay.wts[i];
    for (let x = 0; x < rowLen; x++) {
      let v = 0;
      for (let k = 0; k < I.length; k++) v += tmp[I[k] * rowLen + x] * Wt[k];
      out[i * rowLen + x] = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
    }
  }
  return { data: out, height: outH, width: outW };
}

/** A random image; `smooth` makes neighbouring pixels close, as in photos, so rounding ties are exercised too. */
function randomImage(rng: Rng, height: number, width: number, smooth: boolean): RgbImage {
  const data = new Uint8Array(height * width * 3);
  for (let i = 0; i < data.length; i++) {
    data[i] = smooth && i >= 3 ? Math.min(255, Math.max(0, data[i - 3] + rng.int(9) - 4)) : rng.int(256);
  }
  return { data, height, width };
}

function same(a: RgbImage, b: RgbImage, what: string): void {
  assert.deepEqual([a.height, a.width], [b.height, b.width], what);
  const i = a.data.findIndex((v, k) => v !== b.data[k]);
  assert.equal(i, -1, `${what}: first difference at byte ${i} (${a.data[i]} vs ${b.data[i]})`);
}

Deno.test("resizeArea equals the reference implementation on random images, down and up", () => {
  const rng = new Rng("area-resize");
  const cases: [number, number, number, number][] = [
    [384, 384, 160, 160],
    [384, 288, 213, 160],
    [7, 5, 3, 2],
    [64, 48, 32, 24], // exact halves: sums land on .5 ties
    [30, 30, 10, 10],
    [5, 9, 40, 41], // upscale
  ];
  for (let t = 0; t < 60; t++) {
    cases.push([1 + rng.int(90), 1 + rng.int(90), 1 + rng.int(100), 1 + rng.int(100)]);
  }
  for (const [t, [h, w, oh, ow]] of cases.entries()) {
    const img = randomImage(rng, h, w, t % 2 === 0);
    const ref = resizeAreaReference(img, oh, ow);
    same(resizeArea(img, oh, ow), ref, `${h}×${w} → ${oh}×${ow}`);
    // a random window equals the same crop of the full result
    const wh = 1 + rng.int(oh), ww = 1 + rng.int(ow);
    const box = { y: rng.int(oh - wh + 1), x: rng.int(ow - ww + 1), h: wh, w: ww };
    same(
      resizeArea(img, oh, ow, box),
      crop(ref, box),
      `${h}×${w} → ${oh}×${ow} window ${JSON.stringify(box)}`,
    );
  }
  assert.throws(
    () => resizeArea(randomImage(rng, 8, 8, false), 4, 4, { y: 2, x: 0, h: 3, w: 4 }),
    /not inside/,
  );
});

Deno.test("resize_small(area) then central_crop gives the pixels of resize then crop, and the same size error", () => {
  const rng = new Rng("area-crop");
  for (
    const [h, w, spec] of [
      [384, 384, "decode|resize_small(160)|central_crop(128)"],
      [300, 451, "decode|resize_small(160)|central_crop(128)"],
      [97, 64, "decode|resize_small(80)|central_crop(64, 72)"],
      [40, 40, "decode|resize_small(40)|central_crop(32)"],
    ] as const
  ) {
    const img = randomImage(rng, h, w, true);
    const plan = parsePreprocess(spec);
    const s = plan.ops[1].args.size as number;
    const r = s / Math.min(h, w);
    const rh = Math.max(1, Math.round(h * r)), rw = Math.max(1, Math.round(w * r));
    const resized = resizeAreaReference(img, rh, rw);
    const box = {
      y: (rh - plan.outHeight) >> 1,
      x: (rw - plan.outWidth) >> 1,
      h: plan.outHeight,
      w: plan.outWidth,
    };
    same(runImageOps(plan, img, new Rng(0)), crop(resized, box), `${h}×${w} ${spec}`);
  }
  assert.throws(
    () =>
      runImageOps(
        parsePreprocess("decode|resize_small(20)|central_crop(24)"),
        randomImage(rng, 30, 40, false),
        new Rng(0),
        "x",
      ),
    /^Error: x: central_crop\(24\) needs an image of at least 24×24, got 20×27\.$/,
  );
});
