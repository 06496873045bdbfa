// Encoding with sharp (libvips threads, off the JS thread): lossless PNG, and the byte-budget ladder for uploads.

import sharp, { type JpegOptions, type PngOptions, type Sharp, type WebpOptions } from 'sharp';
import { RGB_CHANNELS, assertRgbImage, type RgbImage } from './image.js';

export type ImageFormat = 'png' | 'webp' | 'jpeg';

/** MIME type and file extension of each format, as Discord and Slack expect them. */
export const IMAGE_FORMATS = {
  png: { contentType: 'image/png', extension: 'png' },
  webp: { contentType: 'image/webp', extension: 'webp' },
  jpeg: { contentType: 'image/jpeg', extension: 'jpg' },
} as const satisfies Record<ImageFormat, { contentType: string; extension: string }>;

export type ImageExtension = (typeof IMAGE_FORMATS)[ImageFormat]['extension'];
export type ImageContentType = (typeof IMAGE_FORMATS)[ImageFormat]['contentType'];

/** An encoded file ready to attach; `width`×`height` is what it decodes to (smaller than the input if downscaled). */
export type EncodedImage = {
  data: Buffer;
  format: ImageFormat;
  contentType: ImageContentType;
  extension: ImageExtension;
  width: number;
  height: number;
  /** The lossy quality (1–100) used; absent for lossless PNG. */
  quality?: number;
};

/** One rung of the lossy ladder. */
export type LossyStep = { format: 'webp' | 'jpeg'; quality: number };

/**
 * Tried in order when the PNG is over budget. WebP first (smaller than JPEG at equal error on photo-like images); the
 * JPEG rungs are for content WebP handles badly (noise-like detail, where mozjpeg came out smaller) and sit below
 * WebP's last rung in size.
 */
export const LOSSY_STEPS = [
  { format: 'webp', quality: 90 },
  { format: 'webp', quality: 80 },
  { format: 'webp', quality: 70 },
  { format: 'jpeg', quality: 70 },
  { format: 'jpeg', quality: 55 },
  { format: 'jpeg', quality: 40 },
] as const satisfies readonly LossyStep[];

/** The default floor of the last-resort downscale: the shorter side never goes below this many pixels. */
export const MIN_DOWNSCALE_SIDE = 256;

export type EncodeForUploadOptions = {
  /** Try lossless PNG first (default true); false goes straight to the lossy ladder. */
  lossless?: boolean;
  /** The lossy ladder, tried in order after PNG; default {@link LOSSY_STEPS}. Must not be empty. */
  lossySteps?: readonly LossyStep[];
  /** The downscale never takes the shorter side below this (pixels); default {@link MIN_DOWNSCALE_SIDE}. */
  minSide?: number;
};

/**
 * zlib level 6 with adaptive row filters (2056² photo-like grid, 2-core x86-64: 0.4–0.5 s, ~6 MB). Filtering halved the
 * file (11.7 → 6.0 MB) for ~30% more time; level 9 saved 6% more at three times the time; levels 2–5 were within 2%.
 */
const PNG_OPTIONS = { compressionLevel: 6, adaptiveFiltering: true } as const satisfies PngOptions;

/** libwebp's default method 4: effort 2 halved the time but lost 0.3 dB on photo-like images and doubled noise's bytes. */
const WEBP_EFFORT = 4;

/** Each downscale multiplies the scale by at most this, so the loop always makes progress. */
const MAX_DOWNSCALE_FACTOR = 0.9;
/** Aim a little under the budget, since bytes only roughly follow the pixel count. */
const DOWNSCALE_MARGIN = 0.95;

/** Thrown by {@link encodeForUpload} when even the smallest attempt is over the budget. */
export class OverBudgetError extends Error {
  override readonly name = 'OverBudgetError';
  /** The budget in bytes. */
  readonly maxBytes: number;
  /** The smallest encoding reached, in bytes. */
  readonly smallestBytes: number;

  constructor(image: RgbImage, maxBytes: number, smallest: Attempt) {
    const quality = smallest.quality === undefined ? '' : ` quality ${smallest.quality}`;
    super(
      `cannot encode a ${image.width}×${image.height} image within ${maxBytes} bytes: the smallest attempt ` +
        `(${smallest.format}${quality} at ${smallest.width}×${smallest.height}) took ${smallest.data.length} bytes`,
    );
    this.maxBytes = maxBytes;
    this.smallestBytes = smallest.data.length;
  }
}

type Attempt = Pick<EncodedImage, 'data' | 'format' | 'quality' | 'width' | 'height'>;

/** Lossless PNG of `image`, decoding to exactly its bytes. */
export async function encodePng(image: RgbImage): Promise<Buffer> {
  assertRgbImage(image);
  return fromPixels(image).png(PNG_OPTIONS).toBuffer();
}

/**
 * The best file of at most `maxBytes` bytes (e.g. Discord's per-interaction `attachment_size_limit`): lossless PNG if it
 * fits, else each {@link LossyStep} in turn, else the smallest of those settings on ever smaller copies (aspect kept)
 * until one fits. Never returns more than `maxBytes`; throws {@link OverBudgetError} when the copy would drop below
 * `minSide`. Each attempt is a full encode, one after another (a 2056² grid on 2 x86-64 cores: PNG ~0.45 s, WebP
 * ~0.4 s, ~0.9 s for noise).
 */
export async function encodeForUpload(
  image: RgbImage,
  maxBytes: number,
  options: EncodeForUploadOptions = {},
): Promise<EncodedImage> {
  assertRgbImage(image);
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
  }
  const steps = options.lossySteps ?? LOSSY_STEPS;
  if (steps.length === 0) throw new RangeError('lossySteps must hold at least one step');
  for (const step of steps) assertLossyStep(step);
  const minSide = options.minSide ?? MIN_DOWNSCALE_SIDE;
  if (!Number.isSafeInteger(minSide) || minSide < 1) {
    throw new RangeError(`minSide must be a positive integer, got ${minSide}`);
  }

  const { width, height } = image;
  if (options.lossless ?? true) {
    const png = await fromPixels(image).png(PNG_OPTIONS).toBuffer();
    if (png.length <= maxBytes) return encoded({ data: png, format: 'png', width, height });
  }

  let smallest: { attempt: Attempt; step: LossyStep } | undefined;
  for (const step of steps) {
    const attempt = await encodeLossy(fromPixels(image), step, width, height);
    if (attempt.data.length <= maxBytes) return encoded(attempt);
    if (smallest === undefined || attempt.data.length < smallest.attempt.data.length) smallest = { attempt, step };
  }
  if (smallest === undefined) throw new Error('unreachable: the lossy ladder is not empty');

  // Last resort: fewer pixels with the setting that came out smallest. Bytes grow about linearly with the pixel
  // count, so each try aims its scale at the budget.
  const shortSide = Math.min(width, height);
  const minScale = minSide / shortSide;
  let scale = 1;
  let last = smallest.attempt;
  for (;;) {
    const aim = Math.sqrt(maxBytes / last.data.length) * DOWNSCALE_MARGIN;
    const next = Math.max(scale * Math.min(aim, MAX_DOWNSCALE_FACTOR), minScale);
    if (next >= scale) throw new OverBudgetError(image, maxBytes, last);
    scale = next;
    const scaledWidth = Math.max(1, Math.round(width * scale));
    const scaledHeight = Math.max(1, Math.round(height * scale));
    const resized = fromPixels(image).resize(scaledWidth, scaledHeight, { fit: 'fill' });
    last = await encodeLossy(resized, smallest.step, scaledWidth, scaledHeight);
    if (last.data.length <= maxBytes) return encoded(last);
  }
}

function fromPixels(image: RgbImage): Sharp {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: RGB_CHANNELS } });
}

async function encodeLossy(pipeline: Sharp, step: LossyStep, width: number, height: number): Promise<Attempt> {
  const data =
    step.format === 'webp'
      ? await pipeline.webp({ quality: step.quality, effort: WEBP_EFFORT } satisfies WebpOptions).toBuffer()
      : await pipeline.jpeg({ quality: step.quality, mozjpeg: true } satisfies JpegOptions).toBuffer();
  return { data, format: step.format, quality: step.quality, width, height };
}

function encoded(attempt: Attempt): EncodedImage {
  const { contentType, extension } = IMAGE_FORMATS[attempt.format];
  const result: EncodedImage = {
    data: attempt.data,
    format: attempt.format,
    contentType,
    extension,
    width: attempt.width,
    height: attempt.height,
  };
  if (attempt.quality !== undefined) result.quality = attempt.quality;
  return result;
}

function assertLossyStep(step: LossyStep): void {
  const knownFormat = step.format === 'webp' || step.format === 'jpeg';
  if (!knownFormat || !Number.isInteger(step.quality) || step.quality < 1 || step.quality > 100) {
    throw new RangeError(`a lossy step is webp or jpeg with an integer quality from 1 to 100, got ${JSON.stringify(step)}`);
  }
}

/** Decodes an encoded image (PNG, WebP, JPEG) back to RGB bytes, for re-encoding a cached file to a smaller budget. */
export async function decodeImage(data: Buffer): Promise<RgbImage> {
  const { data: pixels, info } = await sharp(data).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.length) };
}
