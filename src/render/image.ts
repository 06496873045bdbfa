// The pixel type render works on (what the diffusion engine hands back) and the check every entry point runs on it.

/**
 * An 8-bit sRGB image, rows top to bottom, pixels interleaved R, G, B (HWC):
 * `data.length === width * height * 3`, the pixel at (x, y) starts at `(y * width + x) * 3`.
 */
export type RgbImage = { width: number; height: number; data: Uint8Array };

/** An sRGB colour as 0–255 integers. */
export type Rgb = readonly [red: number, green: number, blue: number];

/** Bytes per pixel of an {@link RgbImage}. */
export const RGB_CHANNELS = 3;

/** Throws a RangeError naming `what` unless `image` is a well-formed {@link RgbImage}. */
export function assertRgbImage(image: RgbImage, what = 'image'): void {
  const { width, height, data } = image;
  if (!Number.isSafeInteger(width) || width < 1 || !Number.isSafeInteger(height) || height < 1) {
    throw new RangeError(`${what}: width and height must be positive integers, got ${width}×${height}`);
  }
  if (!(data instanceof Uint8Array)) {
    throw new RangeError(`${what}: data must be a Uint8Array of RGB bytes`);
  }
  const expected = width * height * RGB_CHANNELS;
  if (data.length !== expected) {
    throw new RangeError(`${what}: a ${width}×${height} RGB image needs ${expected} bytes, got ${data.length}`);
  }
}

/** Throws a RangeError naming `what` unless `colour` holds three integers from 0 to 255. */
export function assertRgb(colour: Rgb, what = 'colour'): void {
  if (colour.length !== RGB_CHANNELS || !colour.every((c) => Number.isInteger(c) && c >= 0 && c <= 255)) {
    throw new RangeError(`${what} must be three integers from 0 to 255, got [${colour.join(', ')}]`);
  }
}
