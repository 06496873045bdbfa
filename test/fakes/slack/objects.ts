// The workspace the fake Slack serves (team, bot, users, channels), its ids and timestamps, and the JSON Slack shows of them.

import { randomBytes } from 'node:crypto';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** A person in the workspace who runs commands and clicks buttons. */
export interface FakeSlackUser {
  id: string;
  name: string;
  realName?: string;
  /** A workspace admin or owner (`users.info` `is_admin` / `is_owner`); default false. */
  isAdmin?: boolean;
  isOwner?: boolean;
}

export interface FakeSlackChannelSpec {
  id: string;
  name: string;
  /** A private channel (`is_private`, shared under `shares.private`); default false. */
  isPrivate?: boolean;
  /** Whether the bot is in the channel; default true. Posting or sharing a file into one it is not in gets `not_in_channel`. */
  botIsMember?: boolean;
  /** User ids in the channel; default every user of the workspace. `chat.postEphemeral` to anyone else gets `user_not_in_channel`. */
  members?: string[];
}

/** The identity behind a token: the bot (`xoxb-`) or the app itself (`xapp-`, Socket Mode only). */
export type TokenKind = 'bot' | 'app';

export interface Workspace {
  teamId: string;
  teamDomain: string;
  teamName: string;
  appId: string;
  botId: string;
  botUserId: string;
  botName: string;
  botToken: string;
  appToken: string;
  /** The legacy verification token Slack still puts in payloads as `token`. */
  verificationToken: string;
  users: FakeSlackUser[];
  channels: FakeSlackChannelSpec[];
}

/** The JSON fields that `@slack/web-api` sends as JSON text inside a form body; the fake decodes them. */
export const JSON_ARGUMENTS = ['blocks', 'attachments', 'files', 'metadata'] as const;

const ID_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** A Slack-looking id: `prefix` (T, U, C, B, A, F) and ten upper-case letters and digits. */
export function randomId(prefix: string): string {
  const bytes = randomBytes(10);
  let id = prefix;
  for (const byte of bytes) id += ID_ALPHABET[byte % ID_ALPHABET.length];
  return id;
}

/**
 * Message timestamps as Slack writes them (`"1712345678.000042"`): seconds, then a counter in the microseconds
 * place, so every ts the fake hands out is unique and later ones compare greater, as strings and as numbers.
 */
export function createTsClock(): () => string {
  let sequence = 0;
  let lastSeconds = 0;
  return () => {
    lastSeconds = Math.max(lastSeconds, Math.floor(Date.now() / 1000));
    sequence += 1;
    return `${lastSeconds}.${String(sequence).padStart(6, '0')}`;
  };
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function channelMembers(workspace: Workspace, channel: FakeSlackChannelSpec): string[] {
  const users = channel.members ?? workspace.users.map((user) => user.id);
  return channel.botIsMember === false ? users : [...users, workspace.botUserId];
}

/** `conversations.info`'s `channel`, trimmed to the fields a bot reads. */
export function channelJson(workspace: Workspace, channel: FakeSlackChannelSpec, created: number): JsonObject {
  const isPrivate = channel.isPrivate === true;
  return {
    id: channel.id,
    name: channel.name,
    name_normalized: channel.name,
    is_channel: !isPrivate,
    is_group: isPrivate,
    is_im: false,
    is_mpim: false,
    is_private: isPrivate,
    is_archived: false,
    is_general: false,
    is_shared: false,
    is_ext_shared: false,
    is_org_shared: false,
    is_member: channel.botIsMember !== false,
    created,
    creator: workspace.users[0]?.id ?? workspace.botUserId,
    context_team_id: workspace.teamId,
    topic: { value: '', creator: '', last_set: 0 },
    purpose: { value: '', creator: '', last_set: 0 },
  };
}

/** `users.info`'s `user` for a person. */
export function userJson(workspace: Workspace, user: FakeSlackUser): JsonObject {
  const realName = user.realName ?? user.name;
  return {
    id: user.id,
    team_id: workspace.teamId,
    name: user.name,
    deleted: false,
    real_name: realName,
    tz: 'Etc/UTC',
    tz_offset: 0,
    is_admin: user.isAdmin === true,
    is_owner: user.isOwner === true,
    is_bot: false,
    is_app_user: false,
    profile: { real_name: realName, display_name: user.name, team: workspace.teamId },
  };
}

/** `users.info`'s `user` for the bot user. */
export function botUserJson(workspace: Workspace): JsonObject {
  return {
    id: workspace.botUserId,
    team_id: workspace.teamId,
    name: workspace.botName,
    deleted: false,
    real_name: workspace.botName,
    is_bot: true,
    is_app_user: false,
    profile: { real_name: workspace.botName, display_name: '', bot_id: workspace.botId, api_app_id: workspace.appId, team: workspace.teamId },
  };
}
