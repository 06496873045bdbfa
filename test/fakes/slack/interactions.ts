// Slash commands and block actions the fake sends, their payloads, and the record (ack, response_url POSTs) tests wait on.

import { randomBytes } from 'node:crypto';
import { buttonsOf, checkBlocks, problemLine, type FakeSlackButton } from './blocks.js';
import type { ChangeFeed } from '../changes.js';
import type { FakeSlackMessage, MessageStore } from './messages.js';
import { isJsonObject, type FakeSlackChannelSpec, type FakeSlackUser, type Json, type JsonObject, type Workspace } from './objects.js';

export type InteractionKind = 'command' | 'action';

/** How the interaction reached the bot: a Socket Mode envelope, or a signed HTTP POST to the bot's Request URL. */
export type Transport = 'socket' | 'http';

export interface SlashCommand {
  /** With the slash, e.g. '/imagine'. */
  command: string;
  text: string;
  userId: string;
  channelId: string;
  /** Default: the fake's team. */
  teamId?: string;
}

export interface ButtonClick {
  actionId: string;
  /** Needed only when buttons in several blocks of the message share `actionId`. */
  blockId?: string;
  /** The ts of a message the fake holds; the button must be on it. */
  messageTs: string;
  channelId: string;
  userId: string;
  /** Overrides the button's own `value` (e.g. to act out a stale button); default the value the bot posted. */
  value?: string;
}

/** What the bot acknowledged with: the Socket Mode ack's `payload`, or the body of the HTTP response. */
export interface AckRecord {
  payload: JsonObject;
  via: Transport;
  /** Milliseconds from sending the interaction to the ack's arrival. */
  elapsedMs: number;
  /** Whether it came after the ack deadline (3 s on Slack, which then shows the user an error and drops the ack). */
  late: boolean;
  at: number;
}

/** One POST the bot made to this interaction's response_url, accepted (200) or not. */
export interface ResponseRecord {
  payload: Json;
  status: number;
  /** Slack's error for a refused POST ('used_url', 'expired_url', 'no_text', 'invalid_blocks', 'invalid_payload'); null if accepted. */
  error: string | null;
  /** The message it posted, replaced or deleted; null if refused. */
  message: FakeSlackMessage | null;
  elapsedMs: number;
  at: number;
}

export interface InteractionLimits {
  ackDeadlineMs: number;
  responseUrlUses: number;
  responseUrlLifetimeMs: number;
}

export interface ResponseAnswer {
  status: number;
  body: JsonObject;
}

const DEFAULT_WAIT_MS = 5_000;

/** One slash command or button click as the fake sent it, and everything the bot did with it. */
export class InteractionHandle {
  readonly kind: InteractionKind;
  readonly transport: Transport;
  /** The payload the bot received (the Socket Mode envelope's `payload`; the HTTP form, decoded). */
  readonly payload: JsonObject;
  /** The Socket Mode envelope id, set when the envelope goes out; null over HTTP. */
  envelopeId: string | null = null;
  readonly responseUrl: string;
  readonly triggerId: string;
  readonly sentAt: number;
  ack: AckRecord | null = null;
  readonly responses: ResponseRecord[] = [];
  /** The message a `replace_original` or `delete_original` acts on: the clicked message, or the command's last reply. */
  target: { channel: string; ts: string } | null;
  private readonly feed: ChangeFeed;
  private readonly limits: InteractionLimits;

  constructor(init: {
    kind: InteractionKind;
    transport: Transport;
    payload: JsonObject;
    responseUrl: string;
    triggerId: string;
    target: { channel: string; ts: string } | null;
    feed: ChangeFeed;
    limits: InteractionLimits;
  }) {
    this.kind = init.kind;
    this.transport = init.transport;
    this.payload = init.payload;
    this.responseUrl = init.responseUrl;
    this.triggerId = init.triggerId;
    this.target = init.target;
    this.feed = init.feed;
    this.limits = init.limits;
    this.sentAt = Date.now();
  }

  get channelId(): string {
    const channel = this.payload.channel;
    return isJsonObject(channel) && typeof channel.id === 'string' ? channel.id : String(this.payload.channel_id);
  }

  get userId(): string {
    const user = this.payload.user;
    return isJsonObject(user) && typeof user.id === 'string' ? user.id : String(this.payload.user_id);
  }

  /** Resolves with the ack once it has arrived (late ones too: check `late`). */
  waitForAck(timeoutMs = DEFAULT_WAIT_MS): Promise<AckRecord> {
    return this.feed.waitFor(
      () => this.ack ?? undefined,
      timeoutMs,
      () => `the ack of ${this.describe()}`,
    );
  }

  /** Resolves with the first accepted response_url POST (already made or still to come) that matches. */
  waitForResponse(predicate: (response: ResponseRecord) => boolean = () => true, timeoutMs = DEFAULT_WAIT_MS): Promise<ResponseRecord> {
    return this.feed.waitFor(
      () => this.responses.find((response) => response.status === 200 && predicate(response)),
      timeoutMs,
      () => `a matching response_url POST for ${this.describe()}; got ${JSON.stringify(this.responses.map((response) => ({ status: response.status, error: response.error, payload: response.payload })))}`,
    );
  }

  recordAck(payload: JsonObject, via: Transport): AckRecord {
    const at = Date.now();
    const elapsedMs = at - this.sentAt;
    this.ack = { payload, via, elapsedMs, late: elapsedMs > this.limits.ackDeadlineMs, at };
    this.feed.notify();
    return this.ack;
  }

  /** Whether response_url still takes a POST: up to `responseUrlUses` accepted POSTs within its lifetime. */
  usability(now: number): 'ok' | 'used_url' | 'expired_url' {
    if (now - this.sentAt > this.limits.responseUrlLifetimeMs) return 'expired_url';
    const used = this.responses.filter((response) => response.status === 200).length;
    return used >= this.limits.responseUrlUses ? 'used_url' : 'ok';
  }

  recordResponse(payload: Json, status: number, error: string | null, message: FakeSlackMessage | null): void {
    const at = Date.now();
    this.responses.push({ payload, status, error, message, elapsedMs: at - this.sentAt, at });
    this.feed.notify();
  }

  describe(): string {
    return this.kind === 'command'
      ? `${String(this.payload.command)} "${String(this.payload.text)}" (${this.transport})`
      : `the click on ${JSON.stringify(this.actionIds())} (${this.transport})`;
  }

  private actionIds(): string[] {
    const actions = Array.isArray(this.payload.actions) ? this.payload.actions : [];
    return actions.map((action) => (isJsonObject(action) ? String(action.action_id) : '?'));
  }
}

/** A `trigger_id` in Slack's shape (`<digits>.<digits>.<hex>`). */
export function newTriggerId(): string {
  return `${Date.now()}.${randomBytes(4).readUInt32BE()}.${randomBytes(16).toString('hex')}`;
}

/** The slash-command payload: the form fields Slack POSTs, all strings, which Socket Mode delivers as a JSON object. */
export function commandPayload(
  workspace: Workspace,
  command: SlashCommand,
  user: FakeSlackUser,
  channel: FakeSlackChannelSpec,
  responseUrl: string,
  triggerId: string,
): Record<string, string> {
  return {
    token: workspace.verificationToken,
    team_id: command.teamId ?? workspace.teamId,
    team_domain: workspace.teamDomain,
    channel_id: channel.id,
    channel_name: channel.name,
    user_id: user.id,
    user_name: user.name,
    command: command.command,
    text: command.text,
    api_app_id: workspace.appId,
    is_enterprise_install: 'false',
    response_url: responseUrl,
    trigger_id: triggerId,
  };
}

/** The `block_actions` payload for a click on `button`, which sits on `message`. */
export function blockActionsPayload(
  workspace: Workspace,
  messages: MessageStore,
  click: ButtonClick,
  button: FakeSlackButton,
  user: FakeSlackUser,
  channel: FakeSlackChannelSpec,
  message: FakeSlackMessage,
  responseUrl: string,
  triggerId: string,
  actionTs: string,
): JsonObject {
  const action: JsonObject = {
    action_id: button.actionId ?? '',
    block_id: button.blockId ?? '',
    text: isJsonObject(button.element.text) ? button.element.text : { type: 'plain_text', text: button.text, emoji: true },
    type: 'button',
    action_ts: actionTs,
  };
  const value = click.value ?? button.value;
  if (value !== null) action.value = value;
  if (button.style !== null) action.style = button.style;
  if (button.url !== null) action.url = button.url;
  const payload: JsonObject = {
    type: 'block_actions',
    user: { id: user.id, username: user.name, name: user.name, team_id: workspace.teamId },
    api_app_id: workspace.appId,
    token: workspace.verificationToken,
    container: { type: 'message', message_ts: message.ts, channel_id: channel.id, is_ephemeral: message.ephemeral },
    trigger_id: triggerId,
    team: { id: workspace.teamId, domain: workspace.teamDomain },
    enterprise: null,
    is_enterprise_install: false,
    channel: { id: channel.id, name: channel.name },
    state: { values: {} },
    response_url: responseUrl,
    actions: [action],
  };
  // Slack leaves `message` out for a click on an ephemeral message.
  if (!message.ephemeral) payload.message = messages.json(message);
  return payload;
}

/** The button `click` means on `message`; throws, naming what the message has, when there is no such button. */
export function findButton(message: FakeSlackMessage, click: ButtonClick): FakeSlackButton {
  const matches = buttonsOf(message.blocks).filter(
    (button) => button.actionId === click.actionId && (click.blockId === undefined || button.blockId === click.blockId),
  );
  if (matches.length === 1) return matches[0];
  const present = message.buttons.map((button) => `${button.blockId ?? '?'}/${button.actionId ?? '?'}`);
  if (matches.length === 0) {
    throw new Error(`fake Slack: message ${message.ts} in ${message.channel} has no button "${click.actionId}"${click.blockId ? ` in block "${click.blockId}"` : ''}; it has ${JSON.stringify(present)}`);
  }
  throw new Error(`fake Slack: message ${message.ts} has ${matches.length} buttons "${click.actionId}"; pass blockId (one of ${JSON.stringify(present)})`);
}

/**
 * Applies one POST to a response_url (api.slack.com/interactivity/handling): `delete_original`, `replace_original`,
 * or a new message, ephemeral unless `response_type: 'in_channel'`. Records it on the handle and returns the answer.
 */
export function applyResponse(
  handle: InteractionHandle,
  raw: string,
  messages: MessageStore,
  isSlackFileReady: (fileId: string) => boolean,
): ResponseAnswer {
  const refuse = (status: number, error: string, payload: Json, extra: JsonObject = {}): ResponseAnswer => {
    handle.recordResponse(payload, status, error, null);
    return { status, body: { ok: false, error, ...extra } };
  };
  let payload: Json;
  try {
    payload = JSON.parse(raw) as Json;
  } catch {
    return refuse(400, 'invalid_payload', raw);
  }
  if (!isJsonObject(payload)) return refuse(400, 'invalid_payload', payload);
  const usability = handle.usability(Date.now());
  if (usability !== 'ok') return refuse(404, usability, payload);

  const target = handle.target;
  if (payload.delete_original === true || payload.delete_original === 'true') {
    if (target === null || !messages.delete(target.channel, target.ts)) return refuse(404, 'message_not_found', payload);
    handle.recordResponse(payload, 200, null, messages.get(target.channel, target.ts));
    return { status: 200, body: { ok: true } };
  }
  const text = typeof payload.text === 'string' ? payload.text : '';
  const blocks = payload.blocks === undefined ? [] : payload.blocks;
  if (text === '' && (!Array.isArray(blocks) || blocks.length === 0)) return refuse(400, 'no_text', payload);
  const problems = checkBlocks(blocks, isSlackFileReady);
  if (problems.length > 0) return refuse(400, 'invalid_blocks', payload, { response_metadata: { messages: problems.map(problemLine) } });
  const blockList = (blocks as Json[]).filter(isJsonObject);

  if ((payload.replace_original === true || payload.replace_original === 'true') && target !== null) {
    const updated = messages.update(target.channel, target.ts, text, blockList);
    if (updated === null) return refuse(404, 'message_not_found', payload);
    handle.recordResponse(payload, 200, null, updated);
    return { status: 200, body: { ok: true } };
  }
  const inChannel = payload.response_type === 'in_channel';
  const posted = messages.post({
    channel: handle.channelId,
    threadTs: typeof payload.thread_ts === 'string' ? payload.thread_ts : null,
    text,
    blocks: blockList,
    recipient: inChannel ? null : handle.userId,
    origin: 'response_url',
  });
  if (handle.kind === 'command') handle.target = { channel: posted.channel, ts: posted.ts };
  handle.recordResponse(payload, 200, null, posted);
  return { status: 200, body: { ok: true } };
}

/** Posts what a slash command's ack carried (text or blocks) as Slack shows it: ephemeral unless `in_channel`. */
export function postAckMessage(handle: InteractionHandle, payload: JsonObject, messages: MessageStore): void {
  const text = typeof payload.text === 'string' ? payload.text : '';
  const blocks = Array.isArray(payload.blocks) ? payload.blocks.filter(isJsonObject) : [];
  if (handle.kind !== 'command' || (text === '' && blocks.length === 0)) return;
  const posted = messages.post({
    channel: handle.channelId,
    threadTs: null,
    text,
    blocks,
    recipient: payload.response_type === 'in_channel' ? null : handle.userId,
    origin: 'ack',
  });
  handle.target = { channel: posted.channel, ts: posted.ts };
}
