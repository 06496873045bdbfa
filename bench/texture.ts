// Smooth value noise for the benchmarks' photo-like test images (a seeded generator is passed in).

/** Smooth value noise in [−1, 1]: random values on a grid every `cell` pixels, blended with smoothstep. */
export function valueNoise(width: number, height: number, cell: number, next: () => number): Float32Array {
  const gridWidth = Math.ceil(width / cell) + 2;
  const gridHeight = Math.ceil(height / cell) + 2;
  const lattice = Float32Array.from({ length: gridWidth * gridHeight }, () => next() * 2 - 1);
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const y0 = Math.floor(y / cell);
    const ty = y / cell - y0;
    const sy = ty * ty * (3 - 2 * ty);
    for (let x = 0; x < width; x++) {
      const x0 = Math.floor(x / cell);
      const tx = x / cell - x0;
      const sx = tx * tx * (3 - 2 * tx);
      const i = y0 * gridWidth + x0;
      const top = lattice[i] + (lattice[i + 1] - lattice[i]) * sx;
      const bottom = lattice[i + gridWidth] + (lattice[i + gridWidth + 1] - lattice[i + gridWidth]) * sx;
      out[y * width + x] = top + (bottom - top) * sy;
    }
  }
  return out;
}
