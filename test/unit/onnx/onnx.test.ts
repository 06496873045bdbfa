import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { createGraph, encodeModel as writeTiny, writeModel } from '../../../models/tiny/onnx-writer.js';
import { torchExportVaeDecoder } from '../../../models/tiny/torch-export.js';
import {
  addGraphOutput,
  attribute,
  createMessage,
  decodeModel,
  encodeModel,
  externalData,
  FLOAT,
  FLOAT16,
  indexGraph,
  inlineBytes,
  inlineFloat32,
  int64,
  isExternal,
  makeNode,
  makeTensor,
  OnnxFormatError,
  readModelFile,
  setExternalData,
  tensorDims,
  uniqueName,
  type TensorProto,
} from '../../../src/onnx/index.js';

const root = mkdtempSync(join(tmpdir(), 'onnx-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('ModelProto through protobufjs', () => {
  it('reads a model with external data as a graph only, and writes it back unchanged in meaning', async () => {
    const g = createGraph('g');
    g.input('x', 'float32', ['n', 4]);
    const w = g.initializer('w', 'float32', [4, 300], Float32Array.from({ length: 1200 }, (_, i) => i / 100));
    const b = g.initializer('b', 'float32', [300], Float32Array.from({ length: 300 }, (_, i) => -i));
    g.node('Add', [g.op('MatMul', ['x', w]), b], ['y'], {}, { name: '/layer/Add' });
    g.output('y', 'float32', ['n', 300]);
    const path = join(root, 'external', 'model.onnx');
    await writeModel(path, g, { externalDataFile: 'model.onnx_data' });

    const model = await readModelFile(path);
    expect(int64(model.ir_version)).toBe(8);
    const [weight, bias] = model.graph!.initializer;
    expect(isExternal(weight)).toBe(true);
    expect(externalData(weight)).toEqual({ location: 'model.onnx_data', offset: 0, length: 4800, checksum: undefined });
    expect(isExternal(bias)).toBe(true);
    expect(tensorDims(weight)).toEqual([4, 300]);
    expect(model.graph!.node.map((n) => [n.op_type, n.name])).toEqual([['MatMul', 'MatMul_0'], ['Add', '/layer/Add']]);

    // decode → encode → decode keeps every field
    const again = decodeModel(encodeModel(model));
    expect(JSON.parse(JSON.stringify(again))).toEqual(JSON.parse(JSON.stringify(model)));
    const copy = join(root, 'external', 'copy.onnx');
    await writeFile(copy, encodeModel(again));
    const x = new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [1, 4]);
    const original = await (await ort.InferenceSession.create(path)).run({ x });
    const rewritten = await (await ort.InferenceSession.create(copy)).run({ x });
    expect(rewritten.y.data).toEqual(original.y.data);
  });

  it('says when bytes are not a model', () => {
    expect(() => decodeModel(Uint8Array.from([0xff, 0xff, 0xff]), 'junk.onnx')).toThrow(OnnxFormatError);
    expect(() => decodeModel(Uint8Array.from([0xff, 0xff, 0xff]), 'junk.onnx')).toThrow(/^junk\.onnx: not an ONNX model/);
  });
});

describe('tensors', () => {
  it('reads inline values from raw_data and from the typed fields, and checks counts against dims', () => {
    const raw = makeTensor('r', FLOAT, [2, 2], Float32Array.from([1, 2, 3, 4]));
    expect([...inlineFloat32(raw)]).toEqual([1, 2, 3, 4]);
    const typed = createMessage<TensorProto>('TensorProto', { name: 't', data_type: FLOAT, dims: [3], float_data: [0.5, -1, 2] });
    expect([...inlineFloat32(typed)]).toEqual([0.5, -1, 2]);
    const ints = createMessage<TensorProto>('TensorProto', { name: 'i', data_type: 7, dims: [2], int64_data: [5, -9] });
    expect([...new BigInt64Array(inlineBytes(ints).slice().buffer)]).toEqual([5n, -9n]);
    const short = createMessage<TensorProto>('TensorProto', { name: 's', data_type: FLOAT, dims: [4], float_data: [1] });
    expect(() => inlineBytes(short)).toThrow('tensor s: holds 1 values, dims need 4');
    expect(() => makeTensor('m', FLOAT16, [3], new Uint16Array(2))).toThrow('tensor m: 4 bytes for dims [3] of FLOAT16');
  });

  it('moves a tensor to an external file and back to inline', () => {
    const tensor = makeTensor('w', FLOAT, [2], Float32Array.from([1, 2]));
    setExternalData(tensor, 'model.onnx_data', 128, 8);
    expect(externalData(tensor)).toEqual({ location: 'model.onnx_data', offset: 128, length: 8, checksum: undefined });
    expect(tensor.raw_data).toHaveLength(0);
    expect(() => inlineBytes(tensor)).toThrow('tensor w: data is external (model.onnx_data)');
  });
});

describe('editing a graph in memory and running it from bytes', () => {
  it('appends post-processing nodes (Mul, Add, Clip, Round, Cast, Transpose) and a second output to the VAE decoder', async () => {
    const { graph } = torchExportVaeDecoder({ seed: 3 });
    const { model: bytes } = writeTiny(graph, { opset: 17 });
    const model = decodeModel(bytes);
    const g = model.graph!;
    const index = indexGraph(g);
    expect(index.producer('sample')?.op_type).toBe('Identity');
    expect(index.consumers('latent_sample').map((u) => u.node.name)).toEqual(['/post_quant_conv/Conv']);
    const half = makeTensor(uniqueName(g, 'half'), FLOAT, [], Float32Array.from([127.5]));
    const zero = makeTensor(uniqueName(g, 'zero'), FLOAT, [], Float32Array.from([0]));
    const top = makeTensor(uniqueName(g, 'top'), FLOAT, [], Float32Array.from([255]));
    g.initializer.push(half, zero, top);
    const names = ['scaled', 'shifted', 'clipped', 'rounded', 'bytes'].map((n) => uniqueName(g, n));
    g.node.push(
      makeNode({ opType: 'Mul', inputs: ['sample', half.name], outputs: [names[0]] }),
      makeNode({ opType: 'Add', inputs: [names[0], half.name], outputs: [names[1]] }),
      makeNode({ opType: 'Clip', inputs: [names[1], zero.name, top.name], outputs: [names[2]] }),
      makeNode({ opType: 'Round', inputs: [names[2]], outputs: [names[3]] }),
      makeNode({ opType: 'Cast', inputs: [names[3]], outputs: [names[4]], attributes: [attribute.int('to', 2)] }),
      makeNode({ opType: 'Transpose', inputs: [names[4]], outputs: ['pixels'], attributes: [attribute.ints('perm', [0, 2, 3, 1])] }),
    );
    addGraphOutput(g, 'pixels', 2, ['batch_size', 'height', 'width', 3]);
    expect(() => addGraphOutput(g, 'pixels', 2, null)).toThrow('graph main_graph: pixels is already an output');

    const session = await ort.InferenceSession.create(encodeModel(model));
    const latent = new ort.Tensor('float32', Float32Array.from({ length: 4 * 2 * 2 }, (_, i) => Math.cos(i)), [1, 4, 2, 2]);
    const out = await session.run({ latent_sample: latent });
    expect(out.pixels.dims).toEqual([1, 16, 16, 3]);
    expect(out.pixels.type).toBe('uint8');
    const sample = out.sample.data as Float32Array;
    const pixels = out.pixels.data as Uint8Array;
    // pixel (y, x, c) is channel c of the NCHW sample at (y, x), mapped from [−1, 1] to [0, 255] with round half to even
    const expected = (v: number): number => {
      const scaled = Math.fround(Math.fround(v * 127.5) + 127.5);
      const clipped = Math.min(255, Math.max(0, scaled));
      const floor = Math.floor(clipped);
      return clipped - floor === 0.5 ? (floor % 2 === 0 ? floor : floor + 1) : Math.round(clipped);
    };
    for (const [y, x, c] of [[0, 0, 0], [5, 9, 1], [15, 15, 2]]) expect(pixels[(y * 16 + x) * 3 + c]).toBe(expected(sample[c * 256 + y * 16 + x]));
  });

  it('keeps an attribute made by the helpers readable by onnxruntime (Constant with a tensor)', async () => {
    const g = createGraph('c');
    g.input('x', 'float32', [2]);
    g.node('Mul', ['x', 'k'], ['y']);
    g.output('y', 'float32', [2]);
    const model = decodeModel(writeTiny(g).model);
    model.graph!.node.unshift(makeNode({ opType: 'Constant', inputs: [], outputs: ['k'], attributes: [attribute.tensor('value', makeTensor('', FLOAT, [2], Float32Array.from([3, -1])))] }));
    const out = await (await ort.InferenceSession.create(encodeModel(model))).run({ x: new ort.Tensor('float32', Float32Array.from([2, 5]), [2]) });
    expect([...(out.y.data as Float32Array)]).toEqual([6, -5]);
  });
});
