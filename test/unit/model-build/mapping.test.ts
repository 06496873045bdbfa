import { describe, expect, it } from 'vitest';
import { createGraph, encodeModel } from '../../../models/tiny/onnx-writer.js';
import { torchExportUnet, torchExportVaeDecoder, withLegacyAttentionNames, type StateDict } from '../../../models/tiny/torch-export.js';
import { MappingError, planMapping } from '../../../src/model-build/mapping.js';
import { decodeModel, type GraphProto } from '../../../src/onnx/index.js';

const shapes = (stateDict: StateDict): Map<string, number[]> => new Map([...stateDict].map(([k, v]) => [k, v.shape]));
const graphOf = (builder: Parameters<typeof encodeModel>[0]): GraphProto => decodeModel(encodeModel(builder, { externalDataFile: 'model.onnx_data', opset: 14 }).model).graph!;

describe('graph → state-dict mapping', () => {
  const unet = torchExportUnet({ seed: 1, tied: [['down_blocks.0.resnets.0.conv1.bias', 'down_blocks.0.resnets.0.conv2.bias']] });

  it('maps every key of the tiny torch-exported UNet once, by name, scope and role, through Identity aliases', () => {
    const graph = graphOf(unet.graph);
    const plan = planMapping(graph, shapes(unet.stateDict));
    expect(plan.assignments).toHaveLength(unet.stateDict.size);
    const byKey = new Map(plan.assignments.map((a) => [a.key, a]));
    expect(byKey.get('conv_in.weight')).toMatchObject({ initializer: 'conv_in.weight', rule: 'name', transpose: false });
    expect(byKey.get('time_embedding.linear_1.weight')).toMatchObject({ initializer: 'time_embedding.linear_1.weight', rule: 'name' });
    expect(byKey.get('down_blocks.0.resnets.0.conv2.bias')).toMatchObject({ initializer: 'down_blocks.0.resnets.0.conv2.bias', rule: 'identity' });
    expect(byKey.get('down_blocks.0.resnets.0.norm1.weight')).toMatchObject({ rule: 'norm', transpose: false, dims: [32, 1, 1], keyShape: [32] });
    expect(byKey.get('down_blocks.0.resnets.0.norm1.weight')!.initializer).toMatch(/^onnx::Mul_\d+$/);
    expect(byKey.get('down_blocks.0.resnets.0.norm1.bias')!.initializer).toMatch(/^onnx::Add_\d+$/);
    // every square Linear weight folded into MatMul is read transposed: only this flag tells the two layouts apart
    const squares = plan.assignments.filter((a) => a.rule === 'matmul' && a.dims[0] === a.dims[1]);
    expect(squares.map((a) => a.key.replace(/^.*\.attentions\.0\./, ''))).toEqual(expect.arrayContaining(['proj_in.weight', 'transformer_blocks.0.attn1.to_q.weight', 'transformer_blocks.0.attn2.to_q.weight', 'proj_out.weight']));
    expect(squares.every((a) => a.transpose && a.initializer.startsWith('onnx::MatMul_'))).toBe(true);
    expect(byKey.get('down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight')).toMatchObject({ dims: [2048, 48], keyShape: [48, 2048], transpose: true });
    expect(plan.keptInline.every((name) => name.startsWith('onnx::Resize_'))).toBe(true);
  });

  it('does not depend on the exporter\'s counters: the same graph with other numbers maps the same keys', () => {
    const other = graphOf(torchExportUnet({ seed: 1 }).graph);
    const renumbered = new Map<string, string>();
    for (const tensor of other.initializer) {
      if (!tensor.name.startsWith('onnx::')) continue;
      const name = `onnx::${tensor.name.split('::')[1].split('_')[0]}_${90000 + renumbered.size}`;
      renumbered.set(tensor.name, name);
      tensor.name = name;
    }
    for (const node of other.node) node.input = node.input.map((i) => renumbered.get(i) ?? i);
    const plan = planMapping(other, shapes(unet.stateDict));
    const keyOf = (a: { key: string; transpose: boolean; dims: number[] }) => `${a.key} ${a.transpose} ${a.dims.join('x')}`;
    expect(plan.assignments.map(keyOf).sort()).toEqual(planMapping(graphOf(unet.graph), shapes(unet.stateDict)).assignments.map(keyOf).sort());
  });

  it('reads a module called twice (`proj_1`) as its key, and keeps module names that end in _1 (`linear_1`)', () => {
    const g = createGraph('g');
    g.input('x', 'float32', [2, 3, 4]);
    const w = g.initializer('onnx::MatMul_7', 'float32', [4, 4], new Float32Array(16));
    const v = g.initializer('onnx::MatMul_8', 'float32', [4, 4], new Float32Array(16));
    g.node('MatMul', ['x', w], ['a'], {}, { name: '/blocks.0/proj_1/MatMul' });
    g.node('MatMul', ['a', v], ['y'], {}, { name: '/blocks.0/linear_1/MatMul' });
    g.output('y', 'float32', [2, 3, 4]);
    const plan = planMapping(graphOf(g), new Map([['blocks.0.proj.weight', [4, 4]], ['blocks.0.linear_1.weight', [4, 4]]]));
    expect(plan.assignments.map((a) => [a.initializer, a.key])).toEqual([
      ['onnx::MatMul_7', 'blocks.0.proj.weight'],
      ['onnx::MatMul_8', 'blocks.0.linear_1.weight'],
    ]);
  });

  it('maps the VAE decoder with old attention names, [C,1] group-norm tensors, and the encoder keys left out', () => {
    const vae = torchExportVaeDecoder({ seed: 2 });
    const legacy = withLegacyAttentionNames(vae.stateDict);
    expect([...legacy.keys()]).toContain('decoder.mid_block.attentions.0.query.weight');
    const plan = planMapping(graphOf(vae.graph), shapes(legacy), { ignoreKeyPrefixes: ['encoder.', 'quant_conv.'], legacyAttentionNames: true });
    const byKey = new Map(plan.assignments.map((a) => [a.key, a]));
    expect(byKey.get('decoder.mid_block.attentions.0.query.weight')).toMatchObject({ rule: 'matmul', transpose: true, dims: [16, 16] });
    expect(byKey.get('decoder.mid_block.attentions.0.proj_attn.bias')).toMatchObject({ initializer: 'decoder.mid_block.attentions.0.to_out.0.bias', rule: 'name' });
    expect(byKey.get('decoder.mid_block.attentions.0.group_norm.weight')).toMatchObject({ rule: 'norm', dims: [16, 1] });
    expect(plan.ignoredKeys.sort()).toEqual(['encoder.conv_in.bias', 'encoder.conv_in.weight', 'quant_conv.bias', 'quant_conv.weight']);
    expect(() => planMapping(graphOf(vae.graph), shapes(legacy))).toThrow(MappingError);
  });

  it('names every initializer and key that does not fit, with shapes', () => {
    const stateDict = new Map(shapes(unet.stateDict));
    stateDict.set('conv_in.weight', [32, 4, 1, 1]);
    stateDict.delete('down_blocks.1.attentions.0.proj_in.weight');
    stateDict.set('extra.weight', [3]);
    const error = (() => {
      try {
        planMapping(graphOf(unet.graph), stateDict, { graphName: 'unet/model.onnx', weightsName: 'new.safetensors' });
      } catch (e) {
        return e as MappingError;
      }
      throw new Error('expected a MappingError');
    })();
    expect(error.message.split('\n')[0]).toBe('new.safetensors does not map onto unet/model.onnx:');
    expect(error.problems).toEqual(
      expect.arrayContaining([
        'conv_in.weight [32, 4, 3, 3] ← conv_in.weight [32, 4, 1, 1]: 128 values do not fit 1152',
        expect.stringMatching(/^onnx::MatMul_\d+: read by MatMul "\/down_blocks\.1\/attentions\.0\/proj_in\/MatMul" as weight, but the weights have no down_blocks\.1\.attentions\.0\.proj_in\.weight$/),
        'extra.weight [3]: no initializer of the graph takes it',
      ]),
    );
  });
});
