import { describe, expect, it } from 'vitest';
import { composeGrid, decodeImage, encodePng } from '../../../src/render/index.js';
import { placeholderTile, PLACEHOLDER_BACKGROUND, PLACEHOLDER_INK } from '../../../src/render/placeholder.js';
import type { RgbImage } from '../../../src/render/image.js';

const pixel = (image: RgbImage, x: number, y: number): number[] => Array.from(image.data.subarray((y * image.width + x) * 3, (y * image.width + x) * 3 + 3));

/** The box around every inked pixel. */
function inkBox(image: RgbImage): { left: number; right: number; top: number; bottom: number; count: number } {
  const box = { left: Infinity, right: -1, top: Infinity, bottom: -1, count: 0 };
  for (let y = 0; y < image.height; y++) {
    for (let x = 0; x < image.width; x++) {
      const [r, g, b] = pixel(image, x, y);
      if (r === PLACEHOLDER_INK[0] && g === PLACEHOLDER_INK[1] && b === PLACEHOLDER_INK[2]) {
        box.count++;
        box.left = Math.min(box.left, x);
        box.right = Math.max(box.right, x);
        box.top = Math.min(box.top, y);
        box.bottom = Math.max(box.bottom, y);
      } else {
        expect([r, g, b]).toEqual([...PLACEHOLDER_BACKGROUND]);
      }
    }
  }
  return box;
}

describe('the placeholder tile', () => {
  it('is a plain tile of the image size with the label centred, at most 70% of its width', () => {
    const tile = placeholderTile(1024, 1024);
    expect(tile.width).toBe(1024);
    expect(tile.height).toBe(1024);
    const box = inkBox(tile);
    expect(box.count).toBeGreaterThan(1000);
    expect(box.right - box.left + 1).toBeLessThanOrEqual(1024 * 0.7);
    // centred to within one font pixel
    expect(Math.abs(box.left - (1023 - box.right))).toBeLessThanOrEqual(10);
    expect(Math.abs(box.top - (1023 - box.bottom))).toBeLessThanOrEqual(10);
  });

  it('draws the font as written: an "I" at scale 1', () => {
    // "I" is 5×7; 70% of an 8×10 tile is 5.6×7 px, so scale 1
    const tile = placeholderTile(8, 10, 'I');
    const rows: string[] = [];
    for (let y = 0; y < 10; y++) {
      let row = '';
      for (let x = 0; x < 8; x++) row += pixel(tile, x, y)[0] === PLACEHOLDER_INK[0] ? '#' : '.';
      rows.push(row);
    }
    // scale 1, one row down and one column in: the glyph's ".###." then "..#.." five times, then ".###."
    expect(rows).toEqual(['........', '..###...', '...#....', '...#....', '...#....', '...#....', '...#....', '..###...', '........', '........']);
  });

  it('fits wide and tall tiles, breaks lines, and leaves the label out of a tile too small for it', () => {
    for (const [w, h] of [[1536, 640], [640, 1536], [128, 128]] as const) {
      const box = inkBox(placeholderTile(w, h, 'hidden by\nthis server'));
      expect(box.count, `${w}×${h}`).toBeGreaterThan(0);
      expect(box.right - box.left + 1).toBeLessThanOrEqual(w * 0.7);
    }
    expect(inkBox(placeholderTile(6, 6)).count).toBe(0);
    expect(() => placeholderTile(64, 64, 'ünïcode')).toThrow(/has no "Ü"/);
    expect(() => placeholderTile(0, 64)).toThrow(RangeError);
  });

  it('takes its place in a grid and encodes like any image', async () => {
    const image: RgbImage = { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(255) };
    const grid = composeGrid([image, placeholderTile(64, 64), image, image]);
    expect(pixel(grid, 0, 0)).toEqual([255, 255, 255]);
    const right = grid.width - 1;
    expect(pixel(grid, right, 0)).toEqual([...PLACEHOLDER_BACKGROUND]);
    const decoded = await decodeImage(await encodePng(placeholderTile(64, 64)));
    expect(decoded.width).toBe(64);
  });
});
