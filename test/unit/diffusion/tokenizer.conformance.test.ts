// Conformance with the real CLIP vocabulary: every reference tokenization must match exactly.
// The vocabulary is not shipped with the project; point CLIP_VOCAB_DIR at a folder holding vocab.json, merges.txt
// and examples.json (CI sets it). Without it these tests are reported as skipped.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ClipTokenizer } from '../../../src/diffusion/index.js';

const folder = process.env.CLIP_VOCAB_DIR;
type Example = { name: string; text: string; input_ids: number[]; input_ids_2: number[] };

describe.skipIf(!folder)('ClipTokenizer on the real CLIP vocabulary (CLIP_VOCAB_DIR)', () => {
  const dir = folder ?? '';
  const examples = existsSync(join(dir, 'examples.json'))
    ? (JSON.parse(readFileSync(join(dir, 'examples.json'), 'utf8')) as { prompts: Example[] }).prompts
    : [];
  let tokenizer: ClipTokenizer;
  let tokenizer2: ClipTokenizer;
  beforeAll(() => {
    tokenizer = ClipTokenizer.fromFiles(join(dir, 'vocab.json'), join(dir, 'merges.txt'));
    tokenizer2 = ClipTokenizer.fromFiles(join(dir, 'vocab.json'), join(dir, 'merges.txt'), { padTokenId: 0 });
  });

  it('has reference examples to check', () => {
    expect(examples.length).toBeGreaterThan(0);
  });

  it.each(examples.map((example) => [example.name, example] as const))('%s: tokenizer/ and tokenizer_2/ ids match', (_, example) => {
    expect(tokenizer.encode(example.text)).toEqual(example.input_ids);
    expect(tokenizer2.encode(example.text)).toEqual(example.input_ids_2);
  });

  it('has the special ids of spec §1.1 and the "a cat" example', () => {
    expect([tokenizer.bosTokenId, tokenizer.eosTokenId, tokenizer.padTokenId, tokenizer2.padTokenId]).toEqual([49406, 49407, 49407, 0]);
    expect(tokenizer.encode('a cat').slice(0, 5)).toEqual([49406, 320, 2368, 49407, 49407]);
  });
});

it.runIf(!folder)('the real-vocabulary conformance tests are skipped: CLIP_VOCAB_DIR is not set', () => {
  console.info('CLIP_VOCAB_DIR is not set: skipping the CLIP conformance tests (CI sets it to ../shared/clip).');
});
