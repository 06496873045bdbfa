// Block Kit checks the fake applies to every message (docs.slack.dev/reference/block-kit: blocks, actions block, button element).

import { isJsonObject, type Json, type JsonObject } from './objects.js';

/** The limits the fake enforces, from the Block Kit reference (spec/platforms.md §2). */
export const BLOCK_LIMITS = {
  blocksPerMessage: 50,
  elementsPerActions: 25,
  blockId: 255,
  actionId: 255,
  buttonText: 75,
  buttonValue: 2000,
  buttonUrl: 3000,
  sectionText: 3000,
  headerText: 150,
  contextElements: 10,
} as const;

/** One `[ERROR] … [json-pointer:/blocks/0/…]` line, as Slack lists them in `response_metadata.messages`. */
export interface BlockProblem {
  pointer: string;
  message: string;
}

/** Answers whether `slack_file: { id }` may be shown yet (the file is known and its sharing has finished). */
export type SlackFileCheck = (fileId: string) => boolean;

/** A button found in a message's blocks (actions elements and section accessories). */
export interface FakeSlackButton {
  blockId: string | null;
  actionId: string | null;
  text: string;
  value: string | null;
  url: string | null;
  style: string | null;
  /** The element as posted. */
  element: JsonObject;
}

/** Problems with `blocks` as Slack would report them; an empty list means it would be accepted. */
export function checkBlocks(blocks: Json, isSlackFileReady: SlackFileCheck): BlockProblem[] {
  const problems: BlockProblem[] = [];
  if (!Array.isArray(blocks)) return [{ pointer: '/blocks', message: 'must be an array' }];
  if (blocks.length > BLOCK_LIMITS.blocksPerMessage) {
    problems.push({ pointer: '/blocks', message: `no more than ${BLOCK_LIMITS.blocksPerMessage} items allowed` });
  }
  const blockIds = new Set<string>();
  blocks.forEach((block, index) => {
    const pointer = `/blocks/${index}`;
    if (!isJsonObject(block) || typeof block.type !== 'string') {
      problems.push({ pointer, message: 'must provide an object with a string "type"' });
      return;
    }
    if (typeof block.block_id === 'string') {
      if (block.block_id.length > BLOCK_LIMITS.blockId) problems.push({ pointer: `${pointer}/block_id`, message: tooLong(BLOCK_LIMITS.blockId) });
      if (blockIds.has(block.block_id)) problems.push({ pointer: `${pointer}/block_id`, message: `duplicate block_id "${block.block_id}"` });
      blockIds.add(block.block_id);
    }
    problems.push(...checkBlock(block, pointer, isSlackFileReady));
  });
  return problems;
}

/** Every button in `blocks`, in order; tolerant of anything malformed (the fake only stores blocks it accepted). */
export function buttonsOf(blocks: JsonObject[]): FakeSlackButton[] {
  const buttons: FakeSlackButton[] = [];
  for (const block of blocks) {
    const blockId = typeof block.block_id === 'string' ? block.block_id : null;
    const elements = Array.isArray(block.elements) ? block.elements : [];
    const candidates = block.type === 'actions' ? elements : block.type === 'section' ? [block.accessory ?? null] : [];
    for (const element of candidates) {
      if (!isJsonObject(element) || element.type !== 'button') continue;
      buttons.push({
        blockId,
        actionId: stringOrNull(element.action_id),
        text: isJsonObject(element.text) && typeof element.text.text === 'string' ? element.text.text : '',
        value: stringOrNull(element.value),
        url: stringOrNull(element.url),
        style: stringOrNull(element.style),
        element,
      });
    }
  }
  return buttons;
}

/** `[ERROR] message [json-pointer:/blocks/…]`, Slack's wording for one problem. */
export function problemLine(problem: BlockProblem): string {
  return `[ERROR] ${problem.message} [json-pointer:${problem.pointer}]`;
}

function checkBlock(block: JsonObject, pointer: string, isSlackFileReady: SlackFileCheck): BlockProblem[] {
  switch (block.type) {
    case 'actions':
      return checkActions(block, pointer);
    case 'section':
      return [
        ...checkText(block.text, `${pointer}/text`, BLOCK_LIMITS.sectionText, block.fields === undefined),
        ...(isJsonObject(block.accessory) && block.accessory.type === 'button' ? checkButton(block.accessory, `${pointer}/accessory`) : []),
      ];
    case 'header':
      return checkText(block.text, `${pointer}/text`, BLOCK_LIMITS.headerText, true);
    case 'context': {
      const elements = Array.isArray(block.elements) ? block.elements : [];
      return elements.length === 0 || elements.length > BLOCK_LIMITS.contextElements
        ? [{ pointer: `${pointer}/elements`, message: `must have 1 to ${BLOCK_LIMITS.contextElements} items` }]
        : [];
    }
    case 'image':
      return checkImage(block, pointer, isSlackFileReady);
    default:
      return [];
  }
}

function checkActions(block: JsonObject, pointer: string): BlockProblem[] {
  const elements = block.elements;
  if (!Array.isArray(elements) || elements.length === 0) return [{ pointer: `${pointer}/elements`, message: 'must provide at least one element' }];
  const problems: BlockProblem[] = [];
  if (elements.length > BLOCK_LIMITS.elementsPerActions) {
    problems.push({ pointer: `${pointer}/elements`, message: `no more than ${BLOCK_LIMITS.elementsPerActions} items allowed` });
  }
  const actionIds = new Set<string>();
  elements.forEach((element, index) => {
    const elementPointer = `${pointer}/elements/${index}`;
    if (!isJsonObject(element)) {
      problems.push({ pointer: elementPointer, message: 'must be an object' });
      return;
    }
    if (typeof element.action_id === 'string') {
      if (actionIds.has(element.action_id)) problems.push({ pointer: `${elementPointer}/action_id`, message: `duplicate action_id "${element.action_id}"` });
      actionIds.add(element.action_id);
    }
    if (element.type === 'button') problems.push(...checkButton(element, elementPointer));
  });
  return problems;
}

function checkButton(button: JsonObject, pointer: string): BlockProblem[] {
  const problems = checkText(button.text, `${pointer}/text`, BLOCK_LIMITS.buttonText, true);
  if (isJsonObject(button.text) && button.text.type !== 'plain_text') {
    problems.push({ pointer: `${pointer}/text/type`, message: 'must be "plain_text"' });
  }
  const limits = [
    ['action_id', BLOCK_LIMITS.actionId],
    ['value', BLOCK_LIMITS.buttonValue],
    ['url', BLOCK_LIMITS.buttonUrl],
  ] as const;
  for (const [field, limit] of limits) {
    const value = button[field];
    if (typeof value === 'string' && value.length > limit) problems.push({ pointer: `${pointer}/${field}`, message: tooLong(limit) });
  }
  return problems;
}

function checkText(text: Json | undefined, pointer: string, limit: number, required: boolean): BlockProblem[] {
  if (text === undefined) return required ? [{ pointer, message: 'must provide an object' }] : [];
  if (!isJsonObject(text) || typeof text.text !== 'string') return [{ pointer, message: 'must provide a text object with a string "text"' }];
  if (text.text.length === 0) return [{ pointer: `${pointer}/text`, message: 'must be more than 0 characters' }];
  return text.text.length > limit ? [{ pointer: `${pointer}/text`, message: tooLong(limit) }] : [];
}

/** An image needs `alt_text` and one of `image_url` or `slack_file`; a `slack_file` must already be shared. */
function checkImage(block: JsonObject, pointer: string, isSlackFileReady: SlackFileCheck): BlockProblem[] {
  const problems: BlockProblem[] = [];
  if (typeof block.alt_text !== 'string') problems.push({ pointer: `${pointer}/alt_text`, message: 'must provide a string' });
  const slackFile = block.slack_file;
  if (typeof block.image_url === 'string') return problems;
  if (!isJsonObject(slackFile)) {
    problems.push({ pointer, message: 'must provide either image_url or slack_file' });
  } else if (typeof slackFile.id === 'string' && !isSlackFileReady(slackFile.id)) {
    // python-slack-sdk#1658, #1797: referencing a file right after upload fails until Slack has processed it.
    problems.push({ pointer: `${pointer}/slack_file`, message: 'invalid slack file' });
  }
  return problems;
}

function tooLong(limit: number): string {
  return `must be less than ${limit + 1} characters`;
}

function stringOrNull(value: Json | undefined): string | null {
  return typeof value === 'string' ? value : null;
}
