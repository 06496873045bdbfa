import { describe, expect, it } from 'vitest';
import { cellOrigin, composeGrid, defaultGutter, gridLayout, type Rgb, type RgbImage } from '../../../src/render/index.js';

/** An image whose every pixel names its image and position: [tag, x, y]. */
function taggedImage(tag: number, width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set([tag, x, y], (y * width + x) * 3);
  }
  return { width, height, data };
}

/** The grid built pixel by pixel from cell offsets written out by hand, to compare with composeGrid's row copies. */
function expectedGrid(images: RgbImage[], offsets: [left: number, top: number][], width: number, height: number, background: Rgb): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let pixel: ArrayLike<number> = background;
      offsets.forEach(([left, top], i) => {
        const { width: w, height: h, data: source } = images[i];
        if (x >= left && x < left + w && y >= top && y < top + h) {
          const at = ((y - top) * w + (x - left)) * 3;
          pixel = source.subarray(at, at + 3);
        }
      });
      data.set(pixel, (y * width + x) * 3);
    }
  }
  return data;
}

const background: Rgb = [200, 100, 50];

describe('gridLayout', () => {
  it('puts 1 image alone and 4 in 2×2, whatever their shape', () => {
    expect(gridLayout(1, 1024, 1024)).toMatchObject({ columns: 1, rows: 1, width: 1024, height: 1024 });
    expect(gridLayout(4, 1024, 1024)).toMatchObject({ columns: 2, rows: 2, gutter: 8, width: 2056, height: 2056 });
    expect(gridLayout(4, 1536, 640)).toMatchObject({ columns: 2, rows: 2, width: 3080, height: 1288 });
  });

  it('puts 2 or 3 square, portrait and moderately wide images in one row', () => {
    expect(gridLayout(2, 1024, 1024)).toMatchObject({ columns: 2, rows: 1, width: 2056, height: 1024 });
    expect(gridLayout(3, 1024, 1024)).toMatchObject({ columns: 3, rows: 1, width: 3088, height: 1024 });
    expect(gridLayout(3, 768, 1344)).toMatchObject({ columns: 3, rows: 1 });
    expect(gridLayout(2, 1152, 896)).toMatchObject({ columns: 2, rows: 1 });
    expect(gridLayout(2, 1344, 768)).toMatchObject({ columns: 2, rows: 1 }); // 1.75:1, just under 16:9
  });

  it('stacks 2 or 3 images wider than 16:9 in one column', () => {
    expect(gridLayout(2, 1536, 640)).toMatchObject({ columns: 1, rows: 2, width: 1536, height: 1288 });
    expect(gridLayout(3, 1536, 640)).toMatchObject({ columns: 1, rows: 3, width: 1536, height: 1936 });
    expect(gridLayout(2, 1920, 1072)).toMatchObject({ columns: 1, rows: 2 }); // 1.79:1
  });

  it('chooses by the target aspect it is given', () => {
    expect(gridLayout(2, 1152, 896, { targetAspect: 1 })).toMatchObject({ columns: 1, rows: 2 });
    expect(gridLayout(2, 1024, 1024, { targetAspect: 1, gutter: 0 })).toMatchObject({ columns: 2, rows: 1 }); // a tie
  });

  it('scales the default gutter with the cell and takes an explicit one', () => {
    expect([defaultGutter(1024, 1024), defaultGutter(1536, 640), defaultGutter(512, 512), defaultGutter(8, 8)]).toEqual([8, 8, 4, 1]);
    expect(gridLayout(4, 10, 10, { gutter: 0 })).toMatchObject({ width: 20, height: 20 });
    expect(gridLayout(2, 10, 10, { gutter: 3 })).toMatchObject({ width: 23, height: 10 });
  });

  it('numbers cells row by row', () => {
    const layout = gridLayout(4, 100, 60, { gutter: 5 });
    expect([0, 1, 2, 3].map((i) => cellOrigin(layout, i))).toEqual([
      { left: 0, top: 0 },
      { left: 105, top: 0 },
      { left: 0, top: 65 },
      { left: 105, top: 65 },
    ]);
    expect(() => cellOrigin(layout, 4)).toThrow(RangeError);
  });

  it('refuses counts outside 1–4 and bad sizes', () => {
    expect(() => gridLayout(0, 10, 10)).toThrow('a grid holds 1 to 4 images, got 0');
    expect(() => gridLayout(5, 10, 10)).toThrow('a grid holds 1 to 4 images, got 5');
    expect(() => gridLayout(2, 0, 10)).toThrow(RangeError);
    expect(() => gridLayout(2, 10, 10, { gutter: -1 })).toThrow(RangeError);
    expect(() => gridLayout(2, 10, 10, { targetAspect: 0 })).toThrow(RangeError);
  });
});

describe('composeGrid', () => {
  const [w, h, g] = [7, 5, 2];
  const images = [1, 2, 3, 4].map((tag) => taggedImage(tag * 40, w, h));

  it('returns a single image as it is', () => {
    expect(composeGrid(images.slice(0, 1))).toBe(images[0]);
  });

  it('places 4 images in 2×2 with background gutters, pixel for pixel', () => {
    const grid = composeGrid(images, { gutter: g, background });
    expect([grid.width, grid.height]).toEqual([2 * w + g, 2 * h + g]);
    const offsets: [number, number][] = [[0, 0], [w + g, 0], [0, h + g], [w + g, h + g]];
    expect(grid.data).toEqual(expectedGrid(images, offsets, grid.width, grid.height, background));
    // spot checks that read without the helper: image 3's (0, 0) and a gutter pixel in the middle
    const at = (x: number, y: number): number[] => [...grid.data.subarray((y * grid.width + x) * 3, (y * grid.width + x) * 3 + 3)];
    expect(at(w + g, h + g)).toEqual([160, 0, 0]);
    expect(at(w + g + 6, h + g + 4)).toEqual([160, 6, 4]);
    expect(at(w, h)).toEqual([...background]);
    expect(at(w + 1, 0)).toEqual([...background]);
  });

  it('places 2 and 3 images in a row', () => {
    for (const count of [2, 3]) {
      const grid = composeGrid(images.slice(0, count), { gutter: g, background });
      const offsets = Array.from({ length: count }, (_, i): [number, number] => [i * (w + g), 0]);
      expect([grid.width, grid.height]).toEqual([count * w + (count - 1) * g, h]);
      expect(grid.data).toEqual(expectedGrid(images, offsets, grid.width, grid.height, background));
    }
  });

  it('stacks 2 and 3 very wide images in a column', () => {
    const wide = [1, 2, 3].map((tag) => taggedImage(tag * 40, 24, 10));
    for (const count of [2, 3]) {
      const grid = composeGrid(wide.slice(0, count), { gutter: 1, background });
      const offsets = Array.from({ length: count }, (_, i): [number, number] => [0, i * 11]);
      expect([grid.width, grid.height]).toEqual([24, count * 10 + count - 1]);
      expect(grid.data).toEqual(expectedGrid(wide, offsets, grid.width, grid.height, background));
    }
  });

  it('uses a dark neutral background and the default gutter when given none', () => {
    const grid = composeGrid(images.slice(0, 2));
    expect(grid.width).toBe(2 * w + 1);
    expect([...grid.data.subarray(w * 3, w * 3 + 3)]).toEqual([32, 32, 32]);
  });

  it('refuses counts 0 and 5, mixed sizes, malformed images and colours', () => {
    expect(() => composeGrid([])).toThrow('a grid holds 1 to 4 images, got 0');
    expect(() => composeGrid([...images, images[0]])).toThrow('a grid holds 1 to 4 images, got 5');
    expect(() => composeGrid([images[0], taggedImage(1, w, h + 1)])).toThrow('grid images must all have one size, got 7×5, 7×6');
    expect(() => composeGrid([images[0], { width: w, height: h, data: new Uint8Array(10) }])).toThrow(
      'grid image 1: a 7×5 RGB image needs 105 bytes, got 10',
    );
    expect(() => composeGrid(images, { background: [0, 0, 256] })).toThrow('grid background must be three integers from 0 to 255');
  });
});
