// Float32 arithmetic helpers for code that must round exactly like a float32 CPU kernel.

export const fround = Math.fround;

/**
 * `fma(a, b, c)` rounded once to float32, as the fused multiply-add a compiler emits for a float kernel.
 * `a` and `b` must be float32 values: their product is then exact in a double, so the only rounding before the
 * final one is the double sum, and that matters only when it lands exactly on a float32 midpoint; there the sign of
 * the sum's rounding error (TwoSum) decides the direction.
 */
export function fma32(a: number, b: number, c: number): number {
  const product = a * b;
  const sum = product + c;
  const rounded = fround(sum);
  if (rounded === sum) return rounded;
  const mirror = 2 * sum - rounded;
  if (fround(mirror) !== mirror) return rounded; // not a float32 midpoint: the double rounding did no harm
  const virtualC = sum - product;
  const error = product - (sum - virtualC) + (c - virtualC);
  if (error === 0) return rounded; // a true tie: fround already chose the even neighbour
  return error > 0 ? Math.max(rounded, mirror) : Math.min(rounded, mirror);
}

/** Rounds to the nearest integer, halves to even (numpy's `round`; JS `Math.round` rounds halves up). */
export function roundHalfToEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction !== 0.5) return fraction < 0.5 ? floor : floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}
