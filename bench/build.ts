// Benchmark of the model builder: throughput (MB/s) and peak RSS converting a synthetic 1.7 GB fp16 safetensors onto a torch-shaped graph.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGraph, encodeModel as encodeTiny } from '../models/tiny/onnx-writer.js';
import { decodeModel, setExternalData, writeModelFile } from '../src/onnx/index.js';
import { createTinyRng } from '../models/tiny/generate.js';
import { PART_KINDS } from '../src/model-build/build.js';
import { openFileSource } from '../src/model-build/byte-source.js';
import { convertModel, type Dtype } from '../src/model-build/convert.js';
import { writeSafetensors, type TensorToWrite } from '../src/model-build/safetensors.js';
import { machineLine } from './stats.js';

/** 64 blocks of two SDXL-sized Linear weights (1280 → 5120 → 1280) and a bias each: 1.68 GB in fp16. */
const BLOCKS = 64;
const WIDTH = 1280;
const INNER = 5120;

const shapes = (b: number): { key: string; shape: number[] }[] => [
  { key: `blocks.${b}.up.weight`, shape: [INNER, WIDTH] },
  { key: `blocks.${b}.up.bias`, shape: [INNER] },
  { key: `blocks.${b}.down.weight`, shape: [WIDTH, INNER] },
  { key: `blocks.${b}.down.bias`, shape: [WIDTH] },
];

/**
 * The graph as torch.onnx.export writes it (folded `onnx::MatMul_<n>` weights, named biases), every tensor pointing
 * into a `model.onnx_data` that is never written: the builder replaces each one without reading it.
 */
async function writeGraph(path: string): Promise<void> {
  const g = createGraph('bench');
  let x = g.input('x', 'float32', ['batch', 'tokens', WIDTH]);
  const dims = new Map<string, number[]>();
  for (let b = 0; b < BLOCKS; b++) {
    for (const [name, inF, outF] of [['up', WIDTH, INNER], ['down', INNER, WIDTH]] as const) {
      const weight = g.initializer(`onnx::MatMul_${1000 + 2 * b + (name === 'up' ? 0 : 1)}`, 'float32', [1], new Float32Array(1));
      const bias = g.initializer(`blocks.${b}.${name}.bias`, 'float32', [1], new Float32Array(1));
      dims.set(weight, [inF, outF]).set(bias, [outF]);
      const product = `/blocks.${b}/${name}/MatMul_output_0`;
      g.node('MatMul', [x, weight], [product], {}, { name: `/blocks.${b}/${name}/MatMul` });
      x = `/blocks.${b}/${name}/Add_output_0`;
      g.node('Add', [bias, product], [x], {}, { name: `/blocks.${b}/${name}/Add` });
    }
  }
  g.node('Identity', [x], ['y'], {}, { name: '/Identity' });
  g.output('y', 'float32', ['batch', 'tokens', WIDTH]);
  const model = decodeModel(encodeTiny(g, { opset: 14 }).model);
  let offset = 0;
  for (const tensor of model.graph!.initializer) {
    tensor.dims = dims.get(tensor.name)!;
    const length = tensor.dims.reduce<number>((a, c) => a * Number(c), 4);
    setExternalData(tensor, 'model.onnx_data', offset, length);
    offset += length;
  }
  await mkdir(dirname(path), { recursive: true });
  await writeModelFile(path, model);
}

async function writeWeights(path: string): Promise<void> {
  const entries = Array.from({ length: BLOCKS }, (_, b) => shapes(b)).flat();
  const rng = createTinyRng(5);
  async function* tensors(): AsyncIterable<TensorToWrite> {
    for (const { key, shape } of entries) {
      const count = shape.reduce((a, c) => a * c, 1);
      const data = new Uint16Array(count);
      for (let i = 0; i < count; i++) data[i] = 0x2000 + Math.floor(rng.next() * 0x1800); // small positive fp16 values
      yield { name: key, dtype: 'F16', shape, data };
    }
  }
  await writeSafetensors(path, tensors, { entries: entries.map(({ key, shape }) => ({ name: key, dtype: 'F16', shape })) });
}

/** Child process: one conversion, then its time and peak RSS as JSON on stdout. */
async function convertOnce(dir: string, dtype: Dtype): Promise<void> {
  const weights = await openFileSource(join(dir, 'weights.safetensors'));
  const started = performance.now();
  const result = await convertModel({ baseGraph: join(dir, 'base/model.onnx'), weights, dtype, fp16Policy: PART_KINDS.unet.fp16, outDir: join(dir, `out-${dtype}`), dataFile: 'model.onnx_data' });
  const seconds = (performance.now() - started) / 1000;
  await weights.close();
  const written = result.files.reduce((n, f) => n + f.size, 0);
  process.stdout.write(JSON.stringify({ seconds, written, tensors: result.tensors, maxRssKb: process.resourceUsage().maxRSS }));
}

async function main(): Promise<void> {
  if (process.argv[2] === '--convert') return convertOnce(process.argv[3], process.argv[4] as Dtype);
  console.log(`machine: ${await machineLine()}`);
  const dir = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'bench-build-'));
  try {
    let started = performance.now();
    await writeGraph(join(dir, 'base/model.onnx'));
    await writeWeights(join(dir, 'weights.safetensors'));
    const input = statSync(join(dir, 'weights.safetensors')).size;
    console.log(`synthetic weights: ${(input / 1e9).toFixed(2)} GB fp16, ${BLOCKS * 4} tensors (written in ${((performance.now() - started) / 1000).toFixed(1)} s)`);
    for (const dtype of ['fp16', 'fp32'] as const) {
      started = performance.now();
      const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--convert', dir, dtype], { encoding: 'utf8', maxBuffer: 1e6 });
      const { seconds, written, tensors, maxRssKb } = JSON.parse(out) as { seconds: number; written: number; tensors: number; maxRssKb: number };
      console.log(
        `build ${dtype}: ${tensors} tensors, read ${(input / 1e9).toFixed(2)} GB, wrote ${(written / 1e9).toFixed(2)} GB in ${seconds.toFixed(1)} s: ` +
          `${(input / 1e6 / seconds).toFixed(0)} MB/s read, ${(written / 1e6 / seconds).toFixed(0)} MB/s written; peak RSS ${(maxRssKb / 1024).toFixed(0)} MiB`,
      );
      rmSync(join(dir, `out-${dtype}`), { recursive: true, force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
