// IEEE-754 binary16 <-> float32 conversion for fp16 ONNX tensors (onnxruntime-node passes their bits as Uint16Array).

/** The float32 bits of every binary16 value, built on first use (256 KiB). */
let halfToFloatBits: Uint32Array | undefined;

function buildHalfToFloatTable(): Uint32Array {
  const table = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0x1f) {
      table[h] = sign | 0x7f800000 | (mantissa << 13); // infinity, or NaN with its payload kept
    } else if (exponent !== 0) {
      table[h] = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa === 0) {
      table[h] = sign;
    } else {
      // subnormal: normalise the mantissa into a float32 normal number
      let shift = 0;
      let m = mantissa;
      while ((m & 0x400) === 0) {
        m <<= 1;
        shift++;
      }
      table[h] = sign | ((113 - shift) << 23) | ((m & 0x3ff) << 13);
    }
  }
  return table;
}

/** binary16 bits of one float32 given as its bits, rounded to nearest, ties to even. */
function floatBitsToHalf(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) {
    if (mantissa === 0) return sign | 0x7c00;
    const payload = mantissa >>> 13;
    return sign | 0x7c00 | (payload === 0 ? 0x200 : payload); // NaN stays NaN
  }
  const halfExponent = exponent - 112;
  if (halfExponent >= 0x1f) return sign | 0x7c00; // too large: infinity
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign; // below half the smallest subnormal: zero
    const full = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    const kept = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    return sign | (rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept);
  }
  const kept = (halfExponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // a carry out of the mantissa correctly bumps the exponent, up to infinity
  return sign | (rest > 0x1000 || (rest === 0x1000 && (kept & 1) === 1) ? kept + 1 : kept);
}

/** float32 → binary16 bits, round to nearest even; subnormals, infinities and NaN (payload kept) handled. */
export function float32ToFloat16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) out[i] = floatBitsToHalf(bits[i]);
  return out;
}

/** binary16 bits → float32, exact. */
export function float16ToFloat32(halves: Uint16Array): Float32Array {
  halfToFloatBits ??= buildHalfToFloatTable();
  const table = halfToFloatBits;
  const out = new Float32Array(halves.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < halves.length; i++) bits[i] = table[halves[i]];
  return out;
}
