// The tile that stands in for an image the server's safety setting hides: a plain grey tile with a short label,
// drawn in raw pixels with a built-in 5×7 font (no font files, so it looks the same on every box).

import type { Rgb, RgbImage } from './image.js';

/** What the tile says when no label is given. */
export const PLACEHOLDER_LABEL = 'IMAGE HIDDEN';
export const PLACEHOLDER_BACKGROUND: Rgb = [58, 58, 62];
export const PLACEHOLDER_INK: Rgb = [206, 206, 210];

const GLYPH_WIDTH = 5;
const GLYPH_HEIGHT = 7;
/** One empty column between letters, two empty rows between lines. */
const ADVANCE = GLYPH_WIDTH + 1;
const LINE_ADVANCE = GLYPH_HEIGHT + 2;
/** The label takes at most this share of the tile's width. */
const TEXT_SHARE = 0.7;

/** A classic 5×7 font: seven rows of five pixels per character, `#` inked. */
const FONT: Readonly<Record<string, string>> = {
  A: '.###. #...# #...# ##### #...# #...# #...#',
  B: '####. #...# #...# ####. #...# #...# ####.',
  C: '.###. #...# #.... #.... #.... #...# .###.',
  D: '####. #...# #...# #...# #...# #...# ####.',
  E: '##### #.... #.... ####. #.... #.... #####',
  F: '##### #.... #.... ####. #.... #.... #....',
  G: '.###. #...# #.... #.### #...# #...# .####',
  H: '#...# #...# #...# ##### #...# #...# #...#',
  I: '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  J: '..### ...#. ...#. ...#. ...#. #..#. .##..',
  K: '#...# #..#. #.#.. ##... #.#.. #..#. #...#',
  L: '#.... #.... #.... #.... #.... #.... #####',
  M: '#...# ##.## #.#.# #.#.# #...# #...# #...#',
  N: '#...# #...# ##..# #.#.# #..## #...# #...#',
  O: '.###. #...# #...# #...# #...# #...# .###.',
  P: '####. #...# #...# ####. #.... #.... #....',
  Q: '.###. #...# #...# #...# #.#.# #..#. .##.#',
  R: '####. #...# #...# ####. #.#.. #..#. #...#',
  S: '.#### #.... #.... .###. ....# ....# ####.',
  T: '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  U: '#...# #...# #...# #...# #...# #...# .###.',
  V: '#...# #...# #...# #...# #...# .#.#. ..#..',
  W: '#...# #...# #...# #.#.# #.#.# #.#.# .#.#.',
  X: '#...# #...# .#.#. ..#.. .#.#. #...# #...#',
  Y: '#...# #...# #...# .#.#. ..#.. ..#.. ..#..',
  Z: '##### ....# ...#. ..#.. .#... #.... #####',
  0: '.###. #...# #..## #.#.# ##..# #...# .###.',
  1: '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.',
  2: '.###. #...# ....# ...#. ..#.. .#... #####',
  3: '##### ...#. ..#.. ...#. ....# #...# .###.',
  4: '...#. ..##. .#.#. #..#. ##### ...#. ...#.',
  5: '##### #.... ####. ....# ....# #...# .###.',
  6: '..##. .#... #.... ####. #...# #...# .###.',
  7: '##### ....# ...#. ..#.. .#... .#... .#...',
  8: '.###. #...# #...# .###. #...# #...# .###.',
  9: '.###. #...# #...# .#### ....# ...#. .##..',
  ' ': '..... ..... ..... ..... ..... ..... .....',
  '.': '..... ..... ..... ..... ..... .##.. .##..',
  ',': '..... ..... ..... ..... .##.. ..#.. .#...',
  ':': '..... .##.. .##.. ..... .##.. .##.. .....',
  '-': '..... ..... ..... ##### ..... ..... .....',
  "'": '..#.. ..#.. .#... ..... ..... ..... .....',
};
const GLYPHS = new Map(Object.entries(FONT).map(([character, rows]) => [character, rows.split(' ').map((row) => [...row].map((cell) => cell === '#'))]));

/**
 * A `width`×`height` tile of {@link PLACEHOLDER_BACKGROUND} with `label` centred in {@link PLACEHOLDER_INK}, its
 * letters scaled by a whole number so the longest line takes at most 70% of the width (at least 1 px per font
 * pixel; a label too big for a tiny tile is left out). `\n` breaks lines; letters are shown in capitals.
 */
export function placeholderTile(width: number, height: number, label: string = PLACEHOLDER_LABEL): RgbImage {
  if (!Number.isSafeInteger(width) || width < 1 || !Number.isSafeInteger(height) || height < 1) {
    throw new RangeError(`a placeholder tile needs a positive integer size, got ${width}×${height}`);
  }
  const lines = label.toUpperCase().split('\n');
  for (const character of lines.join('')) {
    if (!GLYPHS.has(character)) throw new RangeError(`the placeholder font has no "${character}"; use A–Z, 0–9, space and . , : - '`);
  }
  const data = new Uint8Array(width * height * 3);
  for (let p = 0; p < data.length; p += 3) data.set(PLACEHOLDER_BACKGROUND, p);

  const columns = Math.max(...lines.map((line) => line.length * ADVANCE - 1));
  const rows = lines.length * LINE_ADVANCE - 2;
  const scale = Math.min(Math.floor((width * TEXT_SHARE) / columns), Math.floor((height * TEXT_SHARE) / rows));
  if (scale < 1) return { width, height, data };
  const top = Math.floor((height - rows * scale) / 2);
  lines.forEach((line, l) => {
    const left = Math.floor((width - (line.length * ADVANCE - 1) * scale) / 2);
    [...line].forEach((character, c) => {
      const glyph = GLYPHS.get(character)!;
      for (let gy = 0; gy < GLYPH_HEIGHT; gy++) {
        for (let gx = 0; gx < GLYPH_WIDTH; gx++) {
          if (!glyph[gy][gx]) continue;
          const x0 = left + (c * ADVANCE + gx) * scale;
          const y0 = top + (l * LINE_ADVANCE + gy) * scale;
          for (let y = y0; y < y0 + scale; y++) for (let x = x0; x < x0 + scale; x++) data.set(PLACEHOLDER_INK, (y * width + x) * 3);
        }
      }
    });
  });
  return { width, height, data };
}
