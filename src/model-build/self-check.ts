// The self-check on real data (spec/model-build.md §6): a few tensors of each mapping rule, read from both copies of the base weights.

import { float16ToFloat32, float32ToFloat16 } from '../diffusion/fp16.js';
import { readModelFile } from '../onnx/index.js';
import type { ByteSource } from './byte-source.js';
import { graphTensorFloat32, transpose } from './convert.js';
import { planMapping, type MappingOptions, type MappingRule, type WeightAssignment } from './mapping.js';
import { bytesToFloat16, readSafetensorsHeader, readTensorBytes } from './safetensors.js';

export type SelfCheckRequest = {
  /** The base graph file (downloaded; small). */
  graph: string;
  /** Its external data file (read with ranges), or null when its tensors are inline. */
  data: ByteSource | null;
  /** The same base weights in diffusers layout (`…fp16.safetensors`, read with ranges). */
  weights: ByteSource;
  mapping?: MappingOptions;
  /** Tensors compared per mapping rule (default 3). */
  perRule?: number;
};

export type CheckedTensor = { initializer: string; key: string; rule: MappingRule; transpose: boolean; values: number };
export type SelfCheckResult = { checked: CheckedTensor[]; keys: number };

export class SelfCheckError extends Error {
  override name = 'SelfCheckError';
}

/**
 * Maps the base graph onto the base state dict (every key, every external tensor, every shape), then compares a few
 * tensors per rule after the mapping, in fp16 (the diffusers copy is fp16): a value more than one fp16 step away
 * stops it with the tensor's name. Square matrices are chosen first for the transposing rules: only values tell a
 * forgotten transpose there.
 */
export async function runSelfCheck(request: SelfCheckRequest): Promise<SelfCheckResult> {
  const model = await readModelFile(request.graph);
  const header = await readSafetensorsHeader(request.weights);
  const plan = planMapping(model.graph!, new Map(header.tensors.map((t) => [t.name, t.shape])), {
    graphName: request.graph,
    weightsName: request.weights.name,
    ...request.mapping,
  });
  const initializers = new Map(model.graph!.initializer.map((t) => [t.name, t]));
  const checked: CheckedTensor[] = [];
  for (const sample of pickSamples(plan.assignments, request.perRule ?? 3)) {
    const tensor = initializers.get(sample.initializer)!;
    const base = float32ToFloat16(await graphTensorFloat32(tensor, request.data));
    const entry = header.byName.get(sample.key)!;
    let other = bytesToFloat16(await readTensorBytes(request.weights, entry), entry.dtype, entry.name);
    if (sample.transpose) {
      const [rows, cols] = sample.keyShape.filter((d) => d !== 1);
      other = transpose(other, rows, cols);
    }
    const a = float16ToFloat32(base);
    const b = float16ToFloat32(other);
    let bad = 0;
    let worst = 0;
    for (let i = 0; i < a.length; i++) {
      const difference = Math.abs(a[i] - b[i]);
      // one fp16 step at this magnitude (2⁻¹⁰ relative), or the smallest subnormal
      if (difference > Math.max(Math.abs(a[i]), Math.abs(b[i])) * 2 ** -10 + 2 ** -24 || Number.isNaN(difference)) bad++;
      worst = Math.max(worst, difference);
    }
    if (bad > 0) {
      throw new SelfCheckError(
        `Self-check failed: ${request.graph} initializer ${sample.initializer} (${sample.rule} rule${sample.transpose ? ', transposed' : ''}) does not hold ${request.weights.name} ${sample.key}: ${bad} of ${a.length} values differ (largest difference ${worst.toPrecision(3)}). The mapping would put wrong weights there, so nothing was written.`,
      );
    }
    checked.push({ initializer: sample.initializer, key: sample.key, rule: sample.rule, transpose: sample.transpose, values: a.length });
  }
  return { checked, keys: plan.assignments.length };
}

/** Up to `perRule` assignments of each rule: square transposed matrices first, then the smallest tensors. */
function pickSamples(assignments: readonly WeightAssignment[], perRule: number): WeightAssignment[] {
  const byRule = new Map<MappingRule, WeightAssignment[]>();
  for (const a of assignments) (byRule.get(a.rule) ?? byRule.set(a.rule, []).get(a.rule)!).push(a);
  const size = (a: WeightAssignment) => a.dims.reduce((x, y) => x * y, 1);
  const square = (a: WeightAssignment) => a.transpose && a.dims.length === 2 && a.dims[0] === a.dims[1];
  return [...byRule.values()].flatMap((list) => [...list].sort((x, y) => Number(square(y)) - Number(square(x)) || size(x) - size(y)).slice(0, perRule));
}
