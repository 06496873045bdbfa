// The inputs and outputs the pipeline needs from each model (spec §6.3), checked once when the sessions load.

import type { OnnxModel } from './session.js';

const FLOATS = ['float32', 'float16'];
const IDS = ['int64', 'int32'];

/** Declared inputs by name with the element types the pipeline can feed; outputs by name. */
export type ModelContract = { inputs: Readonly<Record<string, readonly string[]>>; outputs: readonly string[] };

export const TEXT_ENCODER_CONTRACT: ModelContract = { inputs: { input_ids: IDS }, outputs: [] };
export const TEXT_ENCODER_2_CONTRACT: ModelContract = { inputs: { input_ids: IDS }, outputs: ['text_embeds'] };
export const UNET_CONTRACT: ModelContract = {
  inputs: {
    sample: FLOATS,
    timestep: [...FLOATS, ...IDS],
    encoder_hidden_states: FLOATS,
    text_embeds: FLOATS,
    time_ids: FLOATS,
  },
  outputs: ['out_sample'],
};
export const VAE_DECODER_CONTRACT: ModelContract = { inputs: { latent_sample: FLOATS }, outputs: ['sample'] };

const quoted = (names: Iterable<string>): string => [...names].map((n) => `"${n}"`).join(', ') || 'none';

/** The problems with a loaded model against its contract, each one sentence naming the file. */
export function contractProblems(model: OnnxModel, contract: ModelContract): string[] {
  const problems: string[] = [];
  for (const [name, types] of Object.entries(contract.inputs)) {
    const spec = model.inputs.get(name);
    if (!spec) {
      problems.push(`${model.label}: expected an input named "${name}", found ${quoted(model.inputs.keys())}`);
    } else if (!types.includes(spec.type)) {
      problems.push(`${model.label}: input "${name}" is ${spec.type}; expected ${types.join(' or ')}`);
    }
  }
  for (const name of model.inputs.keys()) {
    if (!(name in contract.inputs)) problems.push(`${model.label}: has an input "${name}" the pipeline does not know how to fill`);
  }
  for (const name of contract.outputs) {
    if (!model.outputs.has(name)) problems.push(`${model.label}: expected an output named "${name}", found ${quoted(model.outputs.keys())}`);
  }
  return problems;
}

const HIDDEN_STATE = /^hidden_states\.(\d+)$/;

/**
 * SDXL conditions on the penultimate hidden state, `hidden_states[-2]`: the `hidden_states.N` output with the
 * second-highest N (`hidden_states.11` of 0…12 for CLIP ViT-L, `.31` of 0…32 for bigG; spec §1.2).
 */
export function penultimateHiddenState(model: OnnxModel): string {
  const layers = [...model.outputs.keys()]
    .map((name) => HIDDEN_STATE.exec(name))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => Number(match[1]))
    .sort((a, b) => a - b);
  if (layers.length < 2) {
    throw new Error(
      `${model.label}: expected outputs hidden_states.0 … hidden_states.N (exported with output_hidden_states), found ${quoted(model.outputs.keys())}; export it with its hidden states (see models/README.md)`,
    );
  }
  return `hidden_states.${layers[layers.length - 2]}`;
}
