import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { float32ToFloat16 } from '../../../src/diffusion/fp16.js';
import { openFileSource } from '../../../src/model-build/byte-source.js';
import { bytesToFloat16, bytesToFloat32, parseSafetensorsHeader, readSafetensorsHeader, readTensorBytes, writeSafetensors } from '../../../src/model-build/safetensors.js';

const root = mkdtempSync(join(tmpdir(), 'safetensors-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A file with a header of exactly `header` (no padding), as older writers made them. */
function rawFile(name: string, header: object, data: Uint8Array): string {
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  const path = join(root, name);
  writeFileSync(path, Buffer.concat([prefix, json, data]));
  return path;
}

describe('safetensors', () => {
  it('writes a padded header and reads tensors back by absolute offset', async () => {
    const path = join(root, 'a.safetensors');
    const weight = Float32Array.from([1, -2, 3.5, 0.25, 8, -0]);
    const half = float32ToFloat16(Float32Array.from([0.5, 65504, -1e-7]));
    await writeSafetensors(path, [
      { name: 'layer.weight', dtype: 'F32', shape: [2, 3], data: weight },
      { name: 'layer.bias', dtype: 'F16', shape: [3], data: half },
    ]);
    const length = Number(readFileSync(path).readBigUInt64LE(0));
    expect(length % 8).toBe(0);
    const source = await openFileSource(path);
    const header = await readSafetensorsHeader(source);
    expect(header.tensors.map((t) => [t.name, t.dtype, t.shape, t.offset - header.dataStart, t.length])).toEqual([
      ['layer.weight', 'F32', [2, 3], 0, 24],
      ['layer.bias', 'F16', [3], 24, 6],
    ]);
    expect(header.fileSize).toBe(readFileSync(path).length);
    expect([...bytesToFloat32(await readTensorBytes(source, header.byName.get('layer.weight')!), 'F32', 'w')]).toEqual([...weight]);
    expect([...bytesToFloat16(await readTensorBytes(source, header.byName.get('layer.bias')!), 'F16', 'b')]).toEqual([...half]);
    await source.close();
  });

  it('reads unpadded headers, metadata and BF16', async () => {
    const bf16 = Uint16Array.from([0x3f80, 0xc000]); // 1, −2
    const path = rawFile('b.safetensors', { __metadata__: { format: 'pt' }, x: { dtype: 'BF16', shape: [2], data_offsets: [0, 4] } }, new Uint8Array(bf16.buffer));
    const source = await openFileSource(path);
    const header = await readSafetensorsHeader(source);
    expect(header.metadata).toEqual({ format: 'pt' });
    expect([...bytesToFloat32(await readTensorBytes(source, header.tensors[0]), 'BF16', 'x')]).toEqual([1, -2]);
    expect([...bytesToFloat16(await readTensorBytes(source, header.tensors[0]), 'BF16', 'x')]).toEqual([0x3c00, 0xc000]);
    await source.close();
  });

  it('refuses what the format forbids, one sentence each', async () => {
    const text = (value: object) => new TextEncoder().encode(JSON.stringify(value));
    expect(() => parseSafetensorsHeader(new TextEncoder().encode(' {}'), 'f')).toThrow('f: not a safetensors file (the header does not start with "{")');
    expect(() => parseSafetensorsHeader(text({ x: { dtype: 'F12', shape: [1], data_offsets: [0, 2] } }), 'f')).toThrow('f: tensor x has unknown dtype "F12"');
    expect(() => parseSafetensorsHeader(text({ x: { dtype: 'F16', shape: [3], data_offsets: [0, 4] } }), 'f')).toThrow('f: tensor x holds 4 bytes; F16 [3] needs 6');
    expect(() => parseSafetensorsHeader(text({ x: { dtype: 'F16', shape: [1], data_offsets: [2, 4] } }), 'f')).toThrow('f: tensor x starts at byte 2 of the data, expected 0 (the format allows no holes or overlaps)');
    const huge = join(root, 'huge.safetensors');
    const prefix = Buffer.alloc(16);
    prefix.writeBigUInt64LE(200_000_000n);
    writeFileSync(huge, prefix);
    const source = await openFileSource(huge);
    await expect(readSafetensorsHeader(source)).rejects.toThrow(`${huge}: not a safetensors file (header length 200000000 is outside 2 bytes – 100 MB)`);
    await source.close();
    expect(() => bytesToFloat32(new Uint8Array(4), 'I32', 'ids')).toThrow('tensor ids: I32 is not a floating-point type the builder reads (F16, BF16, F32)');
  });
});
