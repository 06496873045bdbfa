// Interactions the fake dispatches: their INTERACTION_CREATE payloads and the record, which tests wait on, of what the bot did with each.

import type { ChangeFeed } from '../changes.js';
import type { FakeMessage, MessageStore, StoredMessage, UploadedFile } from './messages.js';
import {
  COMPONENT_TYPE,
  DEFAULT_BOT_PERMISSIONS,
  DM_APP_PERMISSIONS,
  INTERACTION_CONTEXT,
  INTERACTION_TYPE,
  isJsonObject,
  memberJson,
  userJson,
  type FakeGuildSpec,
  type FakeUser,
  type JsonObject,
} from './objects.js';

/** A slash-command option as Discord sends it; `type` is the option type (3 string, 4 integer, 5 boolean, 10 number). */
export interface CommandOption {
  name: string;
  type: number;
  value?: string | number | boolean;
  options?: CommandOption[];
  focused?: boolean;
}

interface InteractionSource {
  user: FakeUser;
  /** Omitted: the bot's DM with `user` (context 1, BOT_DM). */
  guildId?: string;
  /** Default: the guild's first channel, or the DM channel with `user`. */
  channelId?: string;
  /** Bytes per file; default the fake's `attachmentSizeLimit` (10 MiB). */
  attachmentSizeLimit?: number;
  /** The user's locale; default 'en-US'. */
  locale?: string;
  /** The member's permissions in the channel (decimal bitfield); default `DEFAULT_BOT_PERMISSIONS`. */
  memberPermissions?: string;
}

export interface CommandInvocation extends InteractionSource {
  name: string;
  options?: CommandOption[];
}

export interface ButtonClick extends InteractionSource {
  customId: string;
  /** The message the button is on: one the fake holds (a bot reply), or any id, for which a message is made up. */
  messageId: string;
}

/** The body of `POST /interactions/:id/:token/callback`, as received. */
export interface InteractionCallback {
  type: number;
  data: JsonObject | null;
  files: UploadedFile[];
  /** Milliseconds from dispatch to the callback's arrival. */
  elapsedMs: number;
  /** Whether the bot asked for the callback response object (`?with_response=true`). */
  withResponse: boolean;
}

/** What a test holds for one dispatched interaction. */
export interface FakeInteraction {
  readonly id: string;
  readonly token: string;
  readonly kind: 'command' | 'component';
  /** The INTERACTION_CREATE `d` that was dispatched. */
  readonly payload: JsonObject;
  /** `Date.now()` at dispatch. */
  readonly dispatchedAt: number;
  readonly callback: InteractionCallback | null;
  /** The message `@original` names now (a deferred or sent response, or the clicked message after type 6/7). */
  readonly original: FakeMessage | null;
  /** Followup messages, as created, in order. */
  readonly followups: FakeMessage[];
  /** Every edit made through this token (of `@original` or a followup), as it left the message, in order. */
  readonly edits: FakeMessage[];
  /** Resolves with the first callback; rejects after `timeoutMs` (default 5000). */
  waitForCallback(timeoutMs?: number): Promise<InteractionCallback>;
  /** Resolves when `@original` matches `predicate` (default: a response that is no longer loading). */
  waitForOriginal(predicate?: (message: FakeMessage) => boolean, timeoutMs?: number): Promise<FakeMessage>;
  /** Resolves with the first followup that matches `predicate` (default: any). */
  waitForFollowup(predicate?: (message: FakeMessage) => boolean, timeoutMs?: number): Promise<FakeMessage>;
}

const DEFAULT_WAIT_MS = 5_000;

export class InteractionRecord implements FakeInteraction {
  readonly id: string;
  readonly token: string;
  readonly kind: 'command' | 'component';
  readonly payload: JsonObject;
  readonly dispatchedAt = Date.now();
  readonly channelId: string;
  readonly guildId: string | null;
  readonly attachmentSizeLimit: number;
  /** For a component interaction, the message it was clicked on. */
  readonly clickedMessageId: string | null;
  readonly label: string;
  callback: InteractionCallback | null = null;
  originalId: string | null = null;
  /** Set by `expireToken`; the lifetime check also expires a token. */
  expired = false;
  readonly followupIds: string[] = [];
  readonly followups: FakeMessage[] = [];
  readonly edits: FakeMessage[] = [];
  private readonly messages: MessageStore;
  private readonly feed: ChangeFeed;

  constructor(init: {
    id: string;
    token: string;
    kind: 'command' | 'component';
    payload: JsonObject;
    channelId: string;
    guildId: string | null;
    attachmentSizeLimit: number;
    clickedMessageId: string | null;
    label: string;
    messages: MessageStore;
    feed: ChangeFeed;
  }) {
    this.id = init.id;
    this.token = init.token;
    this.kind = init.kind;
    this.payload = init.payload;
    this.channelId = init.channelId;
    this.guildId = init.guildId;
    this.attachmentSizeLimit = init.attachmentSizeLimit;
    this.clickedMessageId = init.clickedMessageId;
    this.label = init.label;
    this.messages = init.messages;
    this.feed = init.feed;
  }

  get original(): FakeMessage | null {
    const message = this.originalId === null ? undefined : this.messages.get(this.originalId);
    return message ? this.messages.snapshot(message) : null;
  }

  /** Whether `message` can be reached with this token (`@original` or one of its followups). */
  owns(message: StoredMessage): boolean {
    return message.id === this.originalId || this.followupIds.includes(message.id);
  }

  waitForCallback(timeoutMs = DEFAULT_WAIT_MS): Promise<InteractionCallback> {
    return this.feed.waitFor(() => this.callback ?? undefined, timeoutMs, () => `the callback of ${this.label}`);
  }

  waitForOriginal(predicate: (message: FakeMessage) => boolean = (message) => !message.loading, timeoutMs = DEFAULT_WAIT_MS): Promise<FakeMessage> {
    return this.feed.waitFor(
      () => {
        const original = this.original;
        return original && predicate(original) ? original : undefined;
      },
      timeoutMs,
      () => `@original of ${this.label} to match; it is ${JSON.stringify(summary(this.original))}`,
    );
  }

  waitForFollowup(predicate: (message: FakeMessage) => boolean = () => true, timeoutMs = DEFAULT_WAIT_MS): Promise<FakeMessage> {
    return this.feed.waitFor(
      () => this.followups.find(predicate),
      timeoutMs,
      () => `a followup of ${this.label} to match; got ${JSON.stringify(this.followups.map(summary))}`,
    );
  }
}

function summary(message: FakeMessage | null): unknown {
  if (message === null) return null;
  const { content, flags, loading, attachments, buttons } = message;
  return { content, flags, loading, attachments: attachments.map((attachment) => attachment.filename), buttons: buttons.map((button) => button.customId) };
}

/** What an interaction payload needs to know about where it happened. */
export interface InteractionPlace {
  applicationId: string;
  user: FakeUser;
  /** Null in a DM. */
  guild: FakeGuildSpec | null;
  /** The channel object as it appears in the payload (guild text or DM). */
  channel: JsonObject;
  joinedAt: string;
  attachmentSizeLimit: number;
  locale: string;
  memberPermissions: string | null;
}

/** The fields every interaction type shares. */
export function interactionBaseJson(id: string, token: string, type: number, place: InteractionPlace): JsonObject {
  const { guild, user } = place;
  const appPermissions = guild ? (guild.botPermissions ?? DEFAULT_BOT_PERMISSIONS) : DM_APP_PERMISSIONS;
  return {
    id,
    application_id: place.applicationId,
    type,
    token,
    version: 1,
    channel: { ...place.channel, ...(guild ? { permissions: appPermissions } : {}) },
    channel_id: String(place.channel.id),
    app_permissions: appPermissions,
    locale: place.locale,
    entitlements: [],
    // GUILD_INSTALL (0) maps to the guild, or to "0" in the bot's DM (Interaction object › Authorizing Integration Owners).
    authorizing_integration_owners: { '0': guild ? guild.id : '0' },
    context: guild ? INTERACTION_CONTEXT.guild : INTERACTION_CONTEXT.botDm,
    attachment_size_limit: place.attachmentSizeLimit,
    ...(guild
      ? {
          guild_id: guild.id,
          guild: { id: guild.id, locale: guild.locale ?? 'en-US', features: [] },
          guild_locale: guild.locale ?? 'en-US',
          member: memberJson(user, place.joinedAt, place.memberPermissions ?? DEFAULT_BOT_PERMISSIONS),
        }
      : { user: userJson(user) }),
  };
}

export function commandDataJson(commandId: string, commandGuildId: string | null, invocation: CommandInvocation): JsonObject {
  return {
    id: commandId,
    name: invocation.name,
    type: 1,
    ...(invocation.options ? { options: invocation.options.map(optionJson) } : {}),
    ...(commandGuildId === null ? {} : { guild_id: commandGuildId }),
  };
}

export function buttonDataJson(customId: string): JsonObject {
  return { custom_id: customId, component_type: COMPONENT_TYPE.button };
}

/** `interaction_metadata` on messages an interaction made (Message › Message Interaction Metadata). */
export function interactionMetadataJson(record: InteractionRecord, extra: JsonObject = {}): JsonObject {
  const { payload } = record;
  const user = payload.user ?? (isJsonObject(payload.member) ? payload.member.user : null);
  return {
    id: record.id,
    type: record.kind === 'command' ? INTERACTION_TYPE.applicationCommand : INTERACTION_TYPE.messageComponent,
    user: user ?? null,
    authorizing_integration_owners: payload.authorizing_integration_owners ?? {},
    ...(record.kind === 'command' && isJsonObject(payload.data) ? { name: payload.data.name ?? null, command_type: 1 } : {}),
    ...(record.clickedMessageId === null ? {} : { interacted_message_id: record.clickedMessageId }),
    ...extra,
  };
}

function optionJson(option: CommandOption): JsonObject {
  return {
    name: option.name,
    type: option.type,
    ...(option.value === undefined ? {} : { value: option.value }),
    ...(option.options ? { options: option.options.map(optionJson) } : {}),
    ...(option.focused ? { focused: true } : {}),
  };
}
