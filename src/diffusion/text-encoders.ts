// Step 2–4 of spec §0: both CLIP encoders → prompt embeddings [B,77,W1+W2] and the pooled vector [B,P].

import type { OnnxModel } from './session.js';

export type PromptEmbeddings = {
  /** `concat(te1 hidden[-2], te2 hidden[-2], axis=-1)`: [batch, 77, width1 + width2] row-major. */
  promptEmbeds: Float32Array;
  /** text_encoder_2's `text_embeds`: [batch, pooledWidth]. */
  pooled: Float32Array;
  batch: number;
  sequence: number;
  /** width1 + width2, read from the models' outputs (768 + 1280 = 2048 for SDXL). */
  width: number;
  pooledWidth: number;
};

/** Per-encoder choice of output, made once at load (the penultimate hidden state's name). */
export type TextEncoders = { first: OnnxModel; second: OnnxModel; firstHidden: string; secondHidden: string };

/**
 * Runs both encoders on already tokenized prompts (`ids1` from tokenizer/, `ids2` from tokenizer_2/, each
 * `batch × 77`). No attention mask is passed: CLIP is causal, as in diffusers.
 */
export async function encodePrompt(encoders: TextEncoders, ids1: readonly number[][], ids2: readonly number[][]): Promise<PromptEmbeddings> {
  const batch = ids1.length;
  const sequence = ids1[0].length;
  const feed = (ids: readonly number[][]) => ({ input_ids: { values: Int32Array.from(ids.flat()), dims: [batch, sequence] } });
  const first = await encoders.first.run(feed(ids1), [encoders.firstHidden]);
  const second = await encoders.second.run(feed(ids2), [encoders.secondHidden, 'text_embeds']);
  const hidden1 = first[encoders.firstHidden];
  const hidden2 = second[encoders.secondHidden];
  const pooled = second.text_embeds;
  const width1 = hidden1.dims[2];
  const width2 = hidden2.dims[2];
  const width = width1 + width2;
  const promptEmbeds = new Float32Array(batch * sequence * width);
  for (let row = 0; row < batch * sequence; row++) {
    promptEmbeds.set(hidden1.values.subarray(row * width1, (row + 1) * width1), row * width);
    promptEmbeds.set(hidden2.values.subarray(row * width2, (row + 1) * width2), row * width + width1);
  }
  return { promptEmbeds, pooled: pooled.values, batch, sequence, width, pooledWidth: pooled.dims[1] };
}

/** The same embeddings repeated for `copies` images: a grid shares one prompt, encoded once. */
export function repeatEmbeddings(embeddings: PromptEmbeddings, copies: number): PromptEmbeddings {
  if (embeddings.batch !== 1) throw new RangeError('repeatEmbeddings expects embeddings of one prompt');
  const repeat = (values: Float32Array): Float32Array => {
    const out = new Float32Array(values.length * copies);
    for (let i = 0; i < copies; i++) out.set(values, i * values.length);
    return out;
  };
  return { ...embeddings, promptEmbeds: repeat(embeddings.promptEmbeds), pooled: repeat(embeddings.pooled), batch: copies };
}
