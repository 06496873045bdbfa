import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_REPO, LIGHTNING_FILES, LIGHTNING_REPO, VAE_FIX_REPO, writeTinyHubRepos, type TinyHubRepos } from '../../../models/tiny/hub-repos.js';
import { PART_KINDS } from '../../../src/model-build/build.js';
import { openFileSource } from '../../../src/model-build/byte-source.js';
import { convertModel, transpose, type Dtype } from '../../../src/model-build/convert.js';
import { maxAbsDiff, rms, runAsFloat32, unetFeeds } from './run-model.js';
import { inferElemTypes } from '../../../src/model-build/fp16-graph.js';
import { externalData, FLOAT, FLOAT16, inlineBytes, readModelFile, tensorDims } from '../../../src/onnx/index.js';

const root = mkdtempSync(join(tmpdir(), 'convert-'));
let repos: TinyHubRepos;

beforeAll(async () => {
  repos = await writeTinyHubRepos(join(root, 'hub'), [4]);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function convertUnet(dtype: Dtype, outDir: string) {
  const weights = await openFileSource(join(repos.repos[LIGHTNING_REPO], LIGHTNING_FILES[4]));
  try {
    return await convertModel({ baseGraph: join(repos.repos[BASE_REPO], 'unet/model.onnx'), weights, dtype, fp16Policy: PART_KINDS.unet.fp16, outDir, dataFile: 'model.onnx_data' });
  } finally {
    await weights.close();
  }
}




describe('converting the base graph with new weights', () => {
  it('fp32: every weight and the output equal the graph written directly with those weights', async () => {
    const outDir = join(root, 'fp32');
    const result = await convertUnet('fp32', outDir);
    expect(result.files.map((f) => f.path)).toEqual([join(outDir, 'model.onnx'), join(outDir, 'model.onnx_data')]);
    const built = await readModelFile(join(outDir, 'model.onnx'));
    const reference = await readModelFile(join(repos.reference, 'unet_4step/model.onnx'));
    const data = readFileSync(join(outDir, 'model.onnx_data'));
    const referenceData = readFileSync(join(repos.reference, 'unet_4step/model.onnx_data'));
    const bytesOf = (tensor: Parameters<typeof externalData>[0], file: Buffer) => {
      const at = externalData(tensor);
      return at ? file.subarray(at.offset, at.offset + at.length!) : Buffer.from(inlineBytes(tensor));
    };
    const named = reference.graph!.initializer.filter((t) => !t.name.startsWith('onnx::'));
    for (const tensor of named) {
      const mine = built.graph!.initializer.find((t) => t.name === tensor.name)!;
      expect(bytesOf(mine, data).equals(bytesOf(tensor, referenceData)), tensor.name).toBe(true);
    }
    expect(built.graph!.initializer.filter((t) => externalData(t)).every((t) => externalData(t)!.offset % 64 === 0)).toBe(true);
    const input = unetFeeds(16, 24, 11);
    const ours = await runAsFloat32(join(outDir, 'model.onnx'), input, 'out_sample');
    const theirs = await runAsFloat32(join(repos.reference, 'unet_4step/model.onnx'), input, 'out_sample');
    expect(maxAbsDiff(ours, theirs)).toBe(0);

    // a converter that forgot to transpose the folded Linear weights: square ones pass every shape check, so only
    // the output comparison above can catch it, and it does
    const forgetful = Buffer.from(data);
    for (const assignment of result.plan.assignments.filter((a) => a.transpose && a.dims[0] === a.dims[1])) {
      const tensor = built.graph!.initializer.find((t) => t.name === assignment.initializer)!;
      const at = externalData(tensor)!;
      const values = new Float32Array(forgetful.buffer.slice(forgetful.byteOffset + at.offset, forgetful.byteOffset + at.offset + at.length!));
      forgetful.set(new Uint8Array(transpose(values, assignment.dims[0], assignment.dims[1]).buffer), at.offset);
    }
    writeFileSync(join(outDir, 'model.onnx_data'), forgetful);
    const wrong = await runAsFloat32(join(outDir, 'model.onnx'), input, 'out_sample');
    expect(maxAbsDiff(wrong, theirs)).toBeGreaterThan(0.05 * rms(theirs));
  });

  it('fp16: fp16 weights and I/O, sinusoidal embeddings and Resize scales kept fp32, within 1% of the reference', async () => {
    const outDir = join(root, 'fp16');
    await convertUnet('fp16', outDir);
    const built = await readModelFile(join(outDir, 'model.onnx'));
    const graph = built.graph!;
    const types = inferElemTypes(graph);
    const weights = graph.initializer.filter((t) => tensorDims(t).length >= 2);
    expect(weights.length).toBeGreaterThan(40);
    expect(weights.every((t) => t.data_type === FLOAT16)).toBe(true);
    for (const node of graph.node.filter((n) => /^\/(time_proj|add_time_proj)\/(Sin|Cos|Mul)/.test(n.name))) expect(types.get(node.output[0]), node.name).toBe(FLOAT);
    const resize = graph.node.filter((n) => n.op_type === 'Resize');
    expect(resize.length).toBeGreaterThan(0);
    for (const node of resize) expect(types.get(node.input[2])).toBe(FLOAT);
    expect(Object.fromEntries(graph.output.map((o) => [o.name, o.type?.tensor_type?.elem_type]))).toEqual({ out_sample: FLOAT16 });

    const input = unetFeeds(16, 24, 11);
    const ours = await runAsFloat32(join(outDir, 'model.onnx'), input, 'out_sample');
    const reference = await runAsFloat32(join(repos.reference, 'unet_4step/model.onnx'), input, 'out_sample');
    // measured here: about 0.2 % of the output's RMS
    expect(maxAbsDiff(ours, reference)).toBeLessThan(0.01 * rms(reference));
  });

  it('fp16 VAE decoder from old-style fp16-fix weights, inline, within 1% of the reference', async () => {
    const outDir = join(root, 'vae');
    const weights = await openFileSource(join(repos.repos[VAE_FIX_REPO], 'diffusion_pytorch_model.safetensors'));
    const result = await convertModel({ baseGraph: join(repos.repos[BASE_REPO], 'vae_decoder/model.onnx'), weights, dtype: 'fp16', fp16Policy: PART_KINDS.vae.fp16, mapping: PART_KINDS.vae.mapping, outDir, dataFile: null });
    await weights.close();
    expect(result.files.map((f) => f.path)).toEqual([join(outDir, 'model.onnx')]);
    expect(result.plan.ignoredKeys).toHaveLength(4);
    const latent = { latent_sample: new ort.Tensor('float32', Float32Array.from({ length: 2 * 4 * 6 * 8 }, (_, i) => Math.sin(i * 0.37) * 2), [2, 4, 6, 8]) };
    const ours = await runAsFloat32(join(outDir, 'model.onnx'), latent, 'sample');
    const reference = await runAsFloat32(join(repos.reference, 'vae_decoder/model.onnx'), latent, 'sample');
    expect(ours.length).toBe(2 * 3 * 48 * 64);
    expect(maxAbsDiff(ours, reference)).toBeLessThan(0.01 * rms(reference));
  });
});
