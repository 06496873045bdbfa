// The messages in the fake's channels: what the bot posted, updated, said ephemerally, answered through response_url, or shared as a file.

import { buttonsOf, type FakeSlackButton } from './blocks.js';
import type { JsonObject, Workspace } from './objects.js';

/**
 * How a message came to be: a Web API method, a slash command's `ack()` body, a POST to a `response_url`, or the
 * message Slack posts when an upload is shared into a channel.
 */
export type MessageOrigin = 'chat.postMessage' | 'chat.postEphemeral' | 'ack' | 'response_url' | 'file_share';

/** A message as it was at one moment; later edits do not change a snapshot. */
export interface FakeSlackMessage {
  channel: string;
  ts: string;
  threadTs: string | null;
  text: string;
  blocks: JsonObject[];
  buttons: FakeSlackButton[];
  /** The author: the bot user for everything the bot posts. */
  user: string;
  /** Ephemeral messages are seen by `recipient` only and cannot be updated with `chat.update`. */
  ephemeral: boolean;
  /** Who sees an ephemeral message (`chat.postEphemeral`'s `user`, or the user who ran the command); null otherwise. */
  recipient: string | null;
  origin: MessageOrigin;
  /** File ids shown with the message (a `file_share` message). */
  files: string[];
  /** How many times it was updated (`chat.update`, `replace_original`). */
  edits: number;
  deleted: boolean;
  /** `Date.now()` at posting and at the last edit. */
  postedAt: number;
  editedAt: number | null;
}

export interface NewMessage {
  channel: string;
  threadTs: string | null;
  text: string;
  blocks: JsonObject[];
  recipient: string | null;
  origin: MessageOrigin;
  files?: string[];
}

type StoredMessage = Omit<FakeSlackMessage, 'buttons'>;

export class MessageStore {
  private readonly list: StoredMessage[] = [];
  private readonly workspace: Workspace;
  private readonly nextTs: () => string;

  constructor(workspace: Workspace, nextTs: () => string) {
    this.workspace = workspace;
    this.nextTs = nextTs;
  }

  post(message: NewMessage): FakeSlackMessage {
    const stored: StoredMessage = {
      channel: message.channel,
      ts: this.nextTs(),
      threadTs: message.threadTs,
      text: message.text,
      blocks: structuredClone(message.blocks),
      user: this.workspace.botUserId,
      ephemeral: message.recipient !== null,
      recipient: message.recipient,
      origin: message.origin,
      files: message.files ?? [],
      edits: 0,
      deleted: false,
      postedAt: Date.now(),
      editedAt: null,
    };
    this.list.push(stored);
    return snapshot(stored);
  }

  /** Replaces the text, and the blocks unless `blocks` is null (`chat.update` keeps the old blocks when it gets none). */
  update(channel: string, ts: string, text: string, blocks: JsonObject[] | null): FakeSlackMessage | null {
    const stored = this.find(channel, ts);
    if (!stored || stored.deleted) return null;
    stored.text = text;
    if (blocks !== null) stored.blocks = structuredClone(blocks);
    stored.edits += 1;
    stored.editedAt = Date.now();
    return snapshot(stored);
  }

  delete(channel: string, ts: string): boolean {
    const stored = this.find(channel, ts);
    if (!stored || stored.deleted) return false;
    stored.deleted = true;
    stored.editedAt = Date.now();
    return true;
  }

  get(channel: string, ts: string): FakeSlackMessage | null {
    const stored = this.find(channel, ts);
    return stored ? snapshot(stored) : null;
  }

  /** The channel's messages that are not deleted, oldest first, ephemeral ones included (see `ephemeral`). */
  inChannel(channel: string): FakeSlackMessage[] {
    return this.list.filter((message) => message.channel === channel && !message.deleted).map(snapshot);
  }

  /** The message JSON Slack returns from `chat.postMessage` and puts in a block action's `message`. */
  json(message: FakeSlackMessage): JsonObject {
    const json: JsonObject = {
      type: 'message',
      user: message.user,
      bot_id: this.workspace.botId,
      app_id: this.workspace.appId,
      text: message.text,
      blocks: message.blocks,
      team: this.workspace.teamId,
      ts: message.ts,
      bot_profile: { id: this.workspace.botId, app_id: this.workspace.appId, name: this.workspace.botName, team_id: this.workspace.teamId, deleted: false },
    };
    if (message.threadTs !== null) json.thread_ts = message.threadTs;
    if (message.edits > 0 && message.editedAt !== null) json.edited = { user: message.user, ts: `${Math.floor(message.editedAt / 1000)}.000000` };
    return json;
  }

  private find(channel: string, ts: string): StoredMessage | undefined {
    return this.list.find((message) => message.channel === channel && message.ts === ts);
  }
}

function snapshot(message: StoredMessage): FakeSlackMessage {
  const copy = structuredClone(message);
  return { ...copy, buttons: buttonsOf(copy.blocks) };
}
