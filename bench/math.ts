// Benchmark of the diffusion math core: tokenizer, seeded noise and fp16 conversion, as medians on this machine.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ClipTokenizer, float16ToFloat32, float32ToFloat16, torchRandn } from '../src/diffusion/index.js';
import { buildSmallVocabulary } from '../models/tiny/vocabulary.js';
import { machineLine, medianMs } from './stats.js';

const PROMPTS = [
  'a lighthouse at dusk',
  'a photo of an astronaut riding a horse on mars',
  'a very detailed oil painting of a beautiful medieval castle on a hill at sunset, surrounded by a lush green forest',
  'café crème brûlée, naïve façade, São Paulo',
  'cyberpunk street market at night, neon signs, rain, reflections, 35mm photo, depth of field',
];

function loadTokenizer(): { tokenizer: ClipTokenizer; vocabulary: string } {
  const dir = process.env.CLIP_VOCAB_DIR;
  if (dir && existsSync(join(dir, 'vocab.json'))) {
    return { tokenizer: ClipTokenizer.fromFiles(join(dir, 'vocab.json'), join(dir, 'merges.txt')), vocabulary: `CLIP (${dir})` };
  }
  const small = buildSmallVocabulary();
  return { tokenizer: new ClipTokenizer(small.vocab, small.merges), vocabulary: 'the small test vocabulary (set CLIP_VOCAB_DIR for the real one)' };
}

async function main(): Promise<void> {
  console.log(`machine: ${await machineLine()}`);
  const { tokenizer, vocabulary } = loadTokenizer();
  let prompt = 0;
  // a fresh tokenizer per batch would only measure the cache; new text each call keeps BPE honest
  const coldMs = await medianMs(() => {
    const fresh = loadTokenizer().tokenizer;
    for (const text of PROMPTS) fresh.encode(text);
  }, 5, 1);
  const warmMs = await medianMs(() => tokenizer.encode(PROMPTS[prompt++ % PROMPTS.length]), 200, 20);
  console.log(`tokenizer (${vocabulary}): ${(warmMs * 1000).toFixed(1)} µs per prompt (cached words); load + first 5 prompts ${coldMs.toFixed(1)} ms`);

  let seed = 0;
  const oneImage = await medianMs(() => torchRandn(seed++, [1, 4, 128, 128]), 15, 3);
  const batch = await medianMs(() => torchRandn(seed++, [4, 4, 128, 128]), 9, 2);
  console.log(`torchRandn [1,4,128,128] (one 1024² image): ${oneImage.toFixed(2)} ms (goal ≤ 5 ms)`);
  console.log(`torchRandn [4,4,128,128] (a 2×2 grid batch): ${batch.toFixed(2)} ms`);

  const latent = torchRandn(1, [4, 128, 128]);
  const toHalf = await medianMs(() => float32ToFloat16(latent), 30, 5);
  const half = float32ToFloat16(latent);
  const toFloat = await medianMs(() => float16ToFloat32(half), 30, 5);
  console.log(`fp16 [4,128,128] latent: float32→float16 ${toHalf.toFixed(3)} ms, float16→float32 ${toFloat.toFixed(3)} ms`);
}

await main();
