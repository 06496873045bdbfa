// Files uploaded through Slack's v2 flow (getUploadURLExternal → POST bytes → completeUploadExternal), and their delayed sharing.

import { randomBytes } from 'node:crypto';
import type { ChangeFeed } from '../changes.js';
import type { MessageStore } from './messages.js';
import { randomId, type JsonObject, type Workspace } from './objects.js';

/** How the bytes reached the upload URL: a multipart form (what `@slack/web-api` sends) or the raw body. */
export type UploadEncoding = 'multipart' | 'raw';

/** A file as it is now (a snapshot: later changes do not show in it). */
export interface FakeSlackFile {
  id: string;
  filename: string;
  title: string;
  /** `length` given to `files.getUploadURLExternal`. */
  declaredLength: number;
  altText: string | null;
  /** The bytes POSTed to the upload URL, untouched; null until then. */
  bytes: Buffer | null;
  uploadEncoding: UploadEncoding | null;
  /** Whether `files.completeUploadExternal` accepted the file. */
  completed: boolean;
  /** Where it was shared (`channel_id`, or each of `channels`); empty for a file kept private to the bot. */
  channels: string[];
  threadTs: string | null;
  initialComment: string | null;
  /** `blocks` given at completion; Slack ignores them when there is an `initial_comment`. */
  blocks: JsonObject[] | null;
  /** Whether Slack's asynchronous processing has finished and the file shows in its channels (`shares`). */
  shared: boolean;
  /** The ts of the file-share message in each channel, once shared. */
  shareTs: Record<string, string>;
  completedAt: number | null;
  sharedAt: number | null;
}

/** Why a completion was refused: a Slack error code and the `[ERROR]` line for `response_metadata.messages`. */
export interface CompletionRefusal {
  error: 'file_not_found' | 'invalid_arguments';
  message: string;
}

export interface Completion {
  files: { id: string; title: string | null }[];
  channels: string[];
  threadTs: string | null;
  initialComment: string | null;
  blocks: JsonObject[] | null;
}

type StoredFile = FakeSlackFile & { uploadKey: string; createdAt: number };

const MIME_TYPES: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  gif: 'image/gif',
  txt: 'text/plain',
  json: 'application/json',
};

export class FileStore {
  private readonly byId = new Map<string, StoredFile>();
  private readonly byUploadKey = new Map<string, StoredFile>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly workspace: Workspace;
  private readonly messages: MessageStore;
  private readonly feed: ChangeFeed;
  private readonly origin: string;
  private readonly shareDelayMs: number;

  constructor(deps: { workspace: Workspace; messages: MessageStore; feed: ChangeFeed; origin: string; shareDelayMs: number }) {
    this.workspace = deps.workspace;
    this.messages = deps.messages;
    this.feed = deps.feed;
    this.origin = deps.origin;
    this.shareDelayMs = deps.shareDelayMs;
  }

  /** `files.getUploadURLExternal`: a new file id and the URL its bytes go to. */
  reserve(filename: string, length: number, altText: string | null): { fileId: string; uploadUrl: string } {
    const file: StoredFile = {
      id: randomId('F'),
      filename,
      title: filename,
      declaredLength: length,
      altText,
      bytes: null,
      uploadEncoding: null,
      completed: false,
      channels: [],
      threadTs: null,
      initialComment: null,
      blocks: null,
      shared: false,
      shareTs: {},
      completedAt: null,
      sharedAt: null,
      uploadKey: randomBytes(12).toString('hex'),
      createdAt: Date.now(),
    };
    this.byId.set(file.id, file);
    this.byUploadKey.set(file.uploadKey, file);
    return { fileId: file.id, uploadUrl: `${this.origin}/upload/v1/${file.uploadKey}` };
  }

  /** Stores the bytes POSTed to an upload URL; false for a URL the fake never handed out. A repeated POST replaces them. */
  receiveBytes(uploadKey: string, bytes: Buffer, encoding: UploadEncoding): boolean {
    const file = this.byUploadKey.get(uploadKey);
    if (!file || file.completed) return false;
    file.bytes = bytes;
    file.uploadEncoding = encoding;
    this.feed.notify();
    return true;
  }

  /** Checks a whole `files.completeUploadExternal` before changing anything: it succeeds or fails as one. */
  refusal(completion: Completion): CompletionRefusal | null {
    if (completion.files.length === 0) return { error: 'invalid_arguments', message: 'files: must provide at least one file' };
    for (const { id } of completion.files) {
      const file = this.byId.get(id);
      if (!file) return { error: 'file_not_found', message: `no file ${id}` };
      if (file.completed) return { error: 'invalid_arguments', message: `file ${id} was already completed` };
      if (file.bytes === null) return { error: 'invalid_arguments', message: `file ${id}: no bytes were POSTed to its upload_url` };
      if (file.bytes.length !== file.declaredLength) {
        return { error: 'invalid_arguments', message: `file ${id}: ${file.bytes.length} bytes uploaded, ${file.declaredLength} declared as length` };
      }
    }
    return null;
  }

  /**
   * Completes the files, and after the share delay shares them into the channels: one file-share message per channel
   * (in the thread, if `threadTs`), and `files.info` starts to list the channel. Until then the file exists but is
   * shared nowhere, as with Slack's asynchronous processing.
   */
  complete(completion: Completion): FakeSlackFile[] {
    const files = completion.files.map(({ id, title }) => {
      const file = this.byId.get(id) as StoredFile;
      file.completed = true;
      file.completedAt = Date.now();
      if (title !== null) file.title = title;
      file.channels = completion.channels;
      file.threadTs = completion.threadTs;
      file.initialComment = completion.initialComment;
      file.blocks = completion.blocks;
      return file;
    });
    if (completion.channels.length > 0) {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.share(files, completion);
      }, this.shareDelayMs);
      this.timers.add(timer);
    }
    this.feed.notify();
    return files.map(snapshot);
  }

  get(id: string): FakeSlackFile | null {
    const file = this.byId.get(id);
    return file ? snapshot(file) : null;
  }

  all(): FakeSlackFile[] {
    return [...this.byId.values()].map(snapshot);
  }

  /** Whether an image block may show the file through `slack_file: { id }`. */
  isShared(id: string): boolean {
    return this.byId.get(id)?.shared === true;
  }

  /** The bytes behind `url_private_download` (`/files-pri/<team>-<id>/<name>`); null for an unknown or incomplete file. */
  download(id: string): { bytes: Buffer; mimetype: string } | null {
    const file = this.byId.get(id);
    if (!file || !file.completed || file.bytes === null) return null;
    return { bytes: file.bytes, mimetype: mimeType(file.filename) };
  }

  /** The `file` object of `files.info` and `files.completeUploadExternal`, with `channels` and `shares` once shared. */
  json(file: FakeSlackFile): JsonObject {
    const created = Math.floor((file.completedAt ?? Date.now()) / 1000);
    const privateUrl = `${this.origin}/files-pri/${this.workspace.teamId}-${file.id}/${encodeURIComponent(file.filename)}`;
    const publicChannels: string[] = [];
    const privateChannels: string[] = [];
    const shares: { public: JsonObject; private: JsonObject } = { public: {}, private: {} };
    if (file.shared) {
      for (const channel of file.channels) {
        const spec = this.workspace.channels.find((candidate) => candidate.id === channel);
        const isPrivate = spec?.isPrivate === true;
        (isPrivate ? privateChannels : publicChannels).push(channel);
        const share: JsonObject = {
          reply_users: [],
          reply_users_count: 0,
          reply_count: 0,
          ts: file.shareTs[channel] ?? '',
          channel_name: spec?.name ?? channel,
          team_id: this.workspace.teamId,
          share_user_id: this.workspace.botUserId,
          source: 'UNKNOWN',
        };
        if (file.threadTs !== null) share.thread_ts = file.threadTs;
        (isPrivate ? shares.private : shares.public)[channel] = [share];
      }
    }
    const sharesJson: JsonObject = {};
    if (Object.keys(shares.public).length > 0) sharesJson.public = shares.public;
    if (Object.keys(shares.private).length > 0) sharesJson.private = shares.private;
    const extension = extensionOf(file.filename);
    const json: JsonObject = {
      id: file.id,
      created,
      timestamp: created,
      name: file.filename,
      title: file.title,
      mimetype: mimeType(file.filename),
      filetype: extension === 'jpeg' ? 'jpg' : extension || 'binary',
      pretty_type: (extension || 'binary').toUpperCase(),
      user: this.workspace.botUserId,
      user_team: this.workspace.teamId,
      editable: false,
      size: file.bytes?.length ?? 0,
      mode: 'hosted',
      is_external: false,
      external_type: '',
      is_public: publicChannels.length > 0,
      public_url_shared: false,
      display_as_bot: false,
      username: '',
      url_private: privateUrl,
      url_private_download: `${privateUrl}?download=1`,
      permalink: `https://${this.workspace.teamDomain}.slack.com/files/${this.workspace.botUserId}/${file.id}/${encodeURIComponent(file.filename)}`,
      file_access: 'visible',
      channels: publicChannels,
      groups: privateChannels,
      ims: [],
      shares: sharesJson,
      comments_count: 0,
      has_rich_preview: false,
    };
    if (file.altText !== null) json.alt_txt = file.altText;
    return json;
  }

  /** Stops pending shares; called when the fake closes. */
  close(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private share(files: StoredFile[], completion: Completion): void {
    const useBlocks = completion.initialComment === null && completion.blocks !== null;
    for (const channel of completion.channels) {
      const message = this.messages.post({
        channel,
        threadTs: completion.threadTs,
        text: completion.initialComment ?? '',
        blocks: useBlocks ? (completion.blocks ?? []) : [],
        recipient: null,
        origin: 'file_share',
        files: files.map((file) => file.id),
      });
      for (const file of files) file.shareTs[channel] = message.ts;
    }
    const now = Date.now();
    for (const file of files) {
      file.shared = true;
      file.sharedAt = now;
    }
    this.feed.notify();
  }
}

function snapshot(file: StoredFile): FakeSlackFile {
  const { uploadKey: _uploadKey, createdAt: _createdAt, ...rest } = file;
  return { ...structuredClone({ ...rest, bytes: null }), bytes: rest.bytes === null ? null : Buffer.from(rest.bytes) };
}

function extensionOf(filename: string): string {
  const dot = filename.lastIndexOf('.');
  return dot === -1 ? '' : filename.slice(dot + 1).toLowerCase();
}

function mimeType(filename: string): string {
  return MIME_TYPES[extensionOf(filename)] ?? 'application/octet-stream';
}
