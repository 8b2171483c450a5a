/**
 * Image decoding to RGB uint8 HWC through sharp (libvips).
 *
 * TFRecord datasets hold JPEG (sometimes PNG) bytes in any colour space: grayscale, CMYK, with alpha, 16-bit. The
 * models want 3-channel RGB, so every image is normalised to sRGB, alpha dropped, 8 bits per channel. One decoder is
 * used for everything so pixels are reproducible (different JPEG decoders differ by a few levels per pixel). A record
 * that cannot be decoded is named in the error.
 *
 * Small baseline JPEGs (up to `JS_DECODE_MAX_PIXELS`, e.g. CIFAR's 32×32) go through `jpeg.ts`, a TypeScript decoder
 * that reproduces libjpeg-turbo's output bit for bit (tested against sharp on the real shards) at ~10× less CPU per
 * image than sharp's per-call overhead; everything else goes through sharp.
 *
 * @example
 * ```ts
 * import { decodeImage } from "./decode.ts";
 * const { data, height, width } = await decodeImage(jpegBytes, "train_x-0-5000.tfrec @ 1234");
 * ```
 * @module
 */

import sharp from "sharp";
import { decodeJpeg, jpegSize } from "./jpeg.ts";

/** A decoded image: RGB, uint8, row-major HWC (`data.length === height * width * 3`). */
export interface RgbImage {
  data: Uint8Array;
  height: number;
  width: number;
}

sharp.cache(false); // every image is decoded once; libvips' operation cache only costs memory here

/** Largest JPEG (in pixels) decoded in TypeScript; beyond it sharp's fixed overhead is the smaller cost. */
export const JS_DECODE_MAX_PIXELS = 128 * 128;

/** Decodes JPEG/PNG (or anything libvips reads) to RGB uint8 HWC. `where` names the record in errors. */
export async function decodeImage(
  bytes: Uint8Array,
  where: string,
  opts: { sharpOnly?: boolean } = {},
): Promise<RgbImage> {
  if (!opts.sharpOnly) {
    const size = jpegSize(bytes);
    if (size && size.width * size.height <= JS_DECODE_MAX_PIXELS) {
      let img: RgbImage | null = null;
      try {
        img = decodeJpeg(bytes);
      } catch (e) {
        throw new Error(
          `${where}: the JPEG image (${bytes.length} bytes) could not be decoded (${(e as Error).message}).`,
        );
      }
      if (img) return img;
    }
  }
  let out: { data: Uint8Array; info: { width: number; height: number; channels: number } };
  try {
    out = await sharp(bytes, { failOn: "error" })
      .toColourspace("srgb")
      .removeAlpha()
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new Error(
      `${where}: the image (${bytes.length} bytes) could not be decoded (${(e as Error).message}).`,
    );
  }
  const { width, height, channels } = out.info;
  let data = new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.length);
  if (channels !== 3) {
    // libvips keeps 1-band images as 1 band after an sRGB no-op on some inputs; expand to RGB ourselves.
    if (channels !== 1) {
      throw new Error(
        `${where}: the decoded image has ${channels} channels, expected 1 or 3 after conversion.`,
      );
    }
    const rgb = new Uint8Array(width * height * 3);
    for (let i = 0, j = 0; i < data.length; i++, j += 3) rgb[j] = rgb[j + 1] = rgb[j + 2] = data[i];
    data = rgb;
  }
  return { data, height, width };
}
