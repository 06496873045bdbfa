// Step 8 of spec §0: latents → VAE decoder → 8-bit RGB, with the rounding done by nodes appended to the decoder graph.

import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  addGraphOutput,
  attribute,
  DATA_TYPES,
  decodeModel,
  defaultOpset,
  encodeModel,
  externalData,
  FLOAT,
  FLOAT16,
  makeNode,
  makeTensor,
  uniqueName,
  int64,
  valueElemType,
  type AttributeProto,
  type GraphProto,
  type TensorShapeDimension,
} from '../onnx/index.js';
import { fround } from './float32.js';
import type { ModelBytes, OnnxModel } from './session.js';

/** SDXL VAE `scaling_factor` (not SD-1.5's 0.18215; spec §4). */
export const VAE_SCALING_FACTOR = 0.13025;

/** An image as HWC RGB bytes. */
export type RgbImage = { width: number; height: number; data: Uint8Array };

/** The decoder's own output, `[batch, 3, height, width]` floats in [−1, 1] (optimum's name, spec §6.3). */
const SAMPLE = 'sample';
/** Round (half to even, like numpy's `np.round` in diffusers) and Clip with min/max inputs need opset 11. */
const MIN_OPSET = 11;

/** The decoder graph with pixels appended, ready for `OnnxModel.load`, and the names of the two outputs it gained. */
export type VaeDecoderGraph = ModelBytes & {
  /** uint8 `[batch, height, width, 3]`: `round_half_even(clamp(x·0.5 + 0.5, 0, 1) · 255)` in float32. */
  pixels: string;
  /** The float32 sum of every sample value: not finite when the decoder overflowed (checked without a pass in JS). */
  finiteCheck: string;
};

/** A loaded decoder and the outputs `decodeLatents` reads. */
export type VaeDecoder = { model: OnnxModel; pixels: string; finiteCheck: string };

/**
 * Reads `vae_decoder/model.onnx` and appends, in memory, the post-processing diffusers' VaeImageProcessor does in
 * numpy (spec §4): `x·0.5 + 0.5`, Clip 0…1, ×255, Round, Cast uint8, Transpose NCHW → NHWC. onnxruntime then hands
 * back the finished 8-bit image (on the GPU's side of the copy when there is one): a quarter of the bytes, and no
 * per-pixel loop on the host. The file on disk is not changed, so any optimum export gets it. An fp16 `sample` is
 * cast to float32 first, so the bytes equal those of the float32 chain exactly. External data files named by the
 * graph are read and handed to onnxruntime with the bytes, since a model made from bytes has no folder.
 */
export async function vaeDecoderWithPixels(path: string, label: string): Promise<VaeDecoderGraph> {
  const model = decodeModel(await readFile(path), label);
  const graph = model.graph!;
  const opset = defaultOpset(model);
  if (opset < MIN_OPSET) throw new Error(`${label}: uses opset ${opset}; the pipeline needs opset ${MIN_OPSET} or later (export it again with a newer exporter)`);
  const output = graph.output.find((o) => o.name === SAMPLE);
  if (!output) throw new Error(`${label}: expected an output named "${SAMPLE}", found ${graph.output.map((o) => `"${o.name}"`).join(', ') || 'none'}`);
  const type = valueElemType(output);
  if (type !== FLOAT && type !== FLOAT16) throw new Error(`${label}: output "${SAMPLE}" must be float32 or float16`);

  const fresh = (base: string): string => uniqueName(graph, `pixels_${base}`);
  const constant = (base: string, value: number): string => {
    const tensor = makeTensor(fresh(base), FLOAT, [], Float32Array.from([value]));
    graph.initializer.push(tensor);
    return tensor.name;
  };
  const node = (opType: string, inputs: string[], base: string, attributes: AttributeProto[] = []): string => {
    const out = fresh(base);
    graph.node.push(makeNode({ opType, inputs, outputs: [out], name: out, attributes }));
    return out;
  };
  const half = constant('half', 0.5);
  const zero = constant('zero', 0);
  const one = constant('one', 1);
  const top = constant('top', 255);
  const sample = type === FLOAT16 ? node('Cast', [SAMPLE], 'float', [attribute.int('to', FLOAT)]) : SAMPLE;
  const shifted = node('Add', [node('Mul', [sample, half], 'halved'), half], 'shifted');
  const scaled = node('Mul', [node('Clip', [shifted, zero, one], 'clamped'), top], 'scaled');
  const bytes = node('Cast', [node('Round', [scaled], 'rounded')], 'bytes', [attribute.int('to', DATA_TYPES.UINT8.code)]);
  const pixels = node('Transpose', [bytes], 'hwc', [attribute.ints('perm', [0, 2, 3, 1])]);
  // no axes: ReduceSum sums every element, in every opset
  const finiteCheck = node('ReduceSum', [sample], 'sum', [attribute.int('keepdims', 0)]);
  addGraphOutput(graph, pixels, DATA_TYPES.UINT8.code, hwcShape(output.type?.tensor_type?.shape?.dim));
  addGraphOutput(graph, finiteCheck, FLOAT, []);
  return { bytes: encodeModel(model), externalData: await readExternalData(graph, dirname(path)), pixels, finiteCheck };
}

/** `[batch, 3, height, width]` dims (sizes or names) as `[batch, height, width, 3]`; null when the rank is unknown. */
function hwcShape(dims: TensorShapeDimension[] | undefined): (number | string)[] | null {
  if (!dims || dims.length !== 4) return null;
  // an unset oneof member may read as 0 through protobufjs' defaults, so 0 counts as unknown too
  const each = dims.map((d, i) => d.dim_param || (d.dim_value ? int64(d.dim_value) : 0) || `pixels_dim_${i}`);
  return [each[0], each[2], each[3], 3];
}

/** Every external data file the graph's initializers name, read whole (a VAE decoder is a few hundred MB at most). */
async function readExternalData(graph: GraphProto, folder: string): Promise<{ path: string; data: Uint8Array }[]> {
  const locations = new Set<string>();
  for (const tensor of graph.initializer) {
    const where = externalData(tensor);
    if (where) locations.add(where.location);
  }
  return Promise.all([...locations].map(async (location) => ({ path: location, data: await readFile(join(folder, location)) })));
}

/**
 * Decodes latents [batch, 4, h, w] into `batch` images of 8h × 8w: views into the one uint8 buffer the decoder
 * returns. A non-finite sum means the VAE overflowed (an fp16 VAE that is not the fp16-fix one): that is an error,
 * never a black image.
 */
export async function decodeLatents(vae: VaeDecoder, latents: Float32Array, dims: readonly number[]): Promise<RgbImage[]> {
  const scale = fround(VAE_SCALING_FACTOR);
  const scaled = new Float32Array(latents.length);
  for (let i = 0; i < latents.length; i++) scaled[i] = latents[i] / scale;
  const outputs = await vae.model.runTensors({ latent_sample: { values: scaled, dims } }, [vae.pixels, vae.finiteCheck]);
  const label = vae.model.label;
  if (!Number.isFinite((outputs[vae.finiteCheck].data as Float32Array)[0])) {
    throw new Error(
      `${label}: produced NaN or infinite pixels; an fp16 VAE decoder must be the fp16-fix one (madebyollin/sdxl-vae-fp16-fix), or use an fp32 VAE (see models/README.md)`,
    );
  }
  const pixels = outputs[vae.pixels];
  const [batch, height, width, channels] = pixels.dims;
  if (pixels.type !== 'uint8' || pixels.dims.length !== 4 || channels !== 3) {
    throw new Error(`${label}: expected pixels of uint8 [batch, height, width, 3], got ${pixels.type} [${pixels.dims.join(', ')}]`);
  }
  const data = pixels.data as Uint8Array;
  const size = height * width * 3;
  return Array.from({ length: batch }, (_, b) => ({ width, height, data: data.subarray(b * size, (b + 1) * size) }));
}
