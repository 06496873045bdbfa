// The fake's messages: created and edited from request bodies as Discord does (attachments, limits), as API JSON, and as test snapshots.

import { DiscordApiError, type FieldError } from './errors.js';
import {
  BUTTON_STYLE_LINK,
  COMPONENT_TYPE,
  isJsonObject,
  MESSAGE_FLAG,
  userJson,
  type FakeUser,
  type Json,
  type JsonObject,
} from './objects.js';

/** A file part of a multipart request: `field` is the form field (`files[0]`), `name` the file name it carried. */
export interface UploadedFile {
  field: string;
  name: string;
  contentType: string | null;
  data: Buffer;
}

/** An attachment with the bytes that were uploaded for it. */
export interface FakeAttachment {
  id: string;
  filename: string;
  size: number;
  contentType: string | null;
  description: string | null;
  url: string;
  data: Buffer;
}

/** A button found anywhere in a message's component tree. */
export interface FakeButton {
  customId: string | null;
  label: string | null;
  style: number;
  url: string | null;
  disabled: boolean;
}

/** Who made a message: the bot through a channel route, the bot through an interaction token, or a test (`clickButton`). */
export type MessageOrigin = 'channel' | 'interaction' | 'seeded';


/** A create or edit request: the JSON body (or multipart `payload_json`) and the files that came with it. */
export interface MessageWrite {
  body: JsonObject;
  files: UploadedFile[];
}

export interface StoredMessage {
  id: string;
  channelId: string;
  guildId: string | null;
  type: number;
  content: string;
  embeds: JsonObject[];
  components: JsonObject[];
  flags: number;
  attachments: FakeAttachment[];
  origin: MessageOrigin;
  interactionId: string | null;
  interactionMetadata: JsonObject | null;
  /** Milliseconds since the epoch. */
  createdAt: number;
  editedAt: number | null;
  deleted: boolean;
}

/**
 * A message as it was at one moment; later edits do not change a snapshot. The stored record (less the interaction
 * metadata), with what tests read off it: its buttons, and whether it is ephemeral or still loading.
 */
export type FakeMessage = Omit<StoredMessage, 'interactionMetadata'> & {
  buttons: FakeButton[];
  ephemeral: boolean;
  /** True while a deferred response still shows "thinking…". */
  loading: boolean;
};

export interface NewMessage {
  channelId: string;
  guildId: string | null;
  type: number;
  origin: MessageOrigin;
  interactionId: string | null;
  interactionMetadata: JsonObject | null;
  /** Flags the creating route sets itself (LOADING for a deferred response). */
  flags?: number;
}

const CONTENT_MAX = 2000;
const EMBEDS_MAX = 10;
const ATTACHMENTS_MAX = 10;
const ACTION_ROWS_MAX = 5;
const ROW_COMPONENTS_MAX = 5;
const CUSTOM_ID_MAX = 100;
const BUTTON_LABEL_MAX = 80;
const CREATE_FLAGS = MESSAGE_FLAG.suppressEmbeds | MESSAGE_FLAG.suppressNotifications | MESSAGE_FLAG.isComponentsV2;
const EDIT_FLAGS = MESSAGE_FLAG.suppressEmbeds | MESSAGE_FLAG.isComponentsV2;

export class MessageStore {
  private readonly messages = new Map<string, StoredMessage>();
  private readonly nextId: () => string;
  private readonly bot: FakeUser;
  private readonly applicationId: string;
  private readonly fileOrigin: string;

  constructor(deps: { nextId: () => string; bot: FakeUser; applicationId: string; fileOrigin: string }) {
    this.nextId = deps.nextId;
    this.bot = deps.bot;
    this.applicationId = deps.applicationId;
    this.fileOrigin = deps.fileOrigin;
  }

  get(id: string): StoredMessage | undefined {
    const message = this.messages.get(id);
    return message && !message.deleted ? message : undefined;
  }

  all(): StoredMessage[] {
    return [...this.messages.values()];
  }

  /**
   * Creates a message from a request. `write` null makes an empty one (a deferred response or a seeded message).
   * `allowEphemeral` lets the EPHEMERAL flag through, as interaction responses and followups may set it.
   */
  create(init: NewMessage, write: MessageWrite | null, options: { attachmentSizeLimit: number; allowEphemeral: boolean }): StoredMessage {
    const message: StoredMessage = {
      id: this.nextId(),
      channelId: init.channelId,
      guildId: init.guildId,
      type: init.type,
      content: '',
      embeds: [],
      components: [],
      flags: init.flags ?? 0,
      attachments: [],
      origin: init.origin,
      interactionId: init.interactionId,
      interactionMetadata: init.interactionMetadata,
      createdAt: Date.now(),
      editedAt: null,
      deleted: false,
    };
    if (write !== null) {
      const allowed = CREATE_FLAGS | (options.allowEphemeral ? MESSAGE_FLAG.ephemeral : 0);
      Object.assign(message, this.applyWrite(message, write, options.attachmentSizeLimit, allowed));
    }
    this.messages.set(message.id, message);
    return message;
  }

  /** Puts a message that a test declares (the one a clicked button sits on) into the store as is. */
  seed(message: StoredMessage): void {
    this.messages.set(message.id, message);
  }

  /** Applies an edit: only the fields present change; LOADING is cleared; EPHEMERAL stays as it was. */
  edit(message: StoredMessage, write: MessageWrite, options: { attachmentSizeLimit: number }): StoredMessage {
    const next = this.applyWrite(message, write, options.attachmentSizeLimit, EDIT_FLAGS);
    Object.assign(message, next, { editedAt: Date.now() });
    return message;
  }

  delete(message: StoredMessage): void {
    message.deleted = true;
  }

  /** The message object the API returns. */
  json(message: StoredMessage): JsonObject {
    return {
      id: message.id,
      type: message.type,
      channel_id: message.channelId,
      author: userJson(this.bot, true),
      content: message.content,
      timestamp: new Date(message.createdAt).toISOString(),
      edited_timestamp: message.editedAt === null ? null : new Date(message.editedAt).toISOString(),
      tts: false,
      mention_everyone: false,
      mentions: [],
      mention_roles: [],
      attachments: message.attachments.map((attachment) => attachmentJson(attachment, message.flags)),
      embeds: message.embeds,
      components: message.components,
      pinned: false,
      flags: message.flags,
      ...(message.interactionId === null
        ? {}
        : { webhook_id: this.applicationId, application_id: this.applicationId }),
      ...(message.interactionMetadata === null ? {} : { interaction_metadata: message.interactionMetadata }),
    };
  }

  snapshot(message: StoredMessage): FakeMessage {
    return {
      id: message.id,
      channelId: message.channelId,
      guildId: message.guildId,
      type: message.type,
      content: message.content,
      embeds: structuredClone(message.embeds),
      components: structuredClone(message.components),
      flags: message.flags,
      attachments: message.attachments.map((attachment) => ({ ...attachment })),
      buttons: findButtons(message.components),
      ephemeral: (message.flags & MESSAGE_FLAG.ephemeral) !== 0,
      loading: (message.flags & MESSAGE_FLAG.loading) !== 0,
      origin: message.origin,
      interactionId: message.interactionId,
      createdAt: message.createdAt,
      editedAt: message.editedAt,
      deleted: message.deleted,
    };
  }

  /** Works out the message a write would leave, or throws the error Discord would answer with; changes nothing. */
  private applyWrite(
    message: StoredMessage,
    write: MessageWrite,
    attachmentSizeLimit: number,
    settableFlags: number,
  ): Pick<StoredMessage, 'content' | 'embeds' | 'components' | 'flags' | 'attachments'> {
    const { body, files } = write;
    const errors: FieldError[] = [];
    let { content, embeds, components } = message;

    if ('content' in body) {
      const value = body.content;
      if (value === null) content = '';
      else if (typeof value !== 'string') errors.push({ path: 'content', code: 'BASE_TYPE_STRING', message: 'Must be a string.' });
      else if (value.length > CONTENT_MAX) {
        errors.push({ path: 'content', code: 'BASE_TYPE_MAX_LENGTH', message: `Must be ${CONTENT_MAX} or fewer in length.` });
      } else content = value;
    }
    if ('embeds' in body) {
      embeds = objectList(body.embeds, 'embeds', errors);
      if (embeds.length > EMBEDS_MAX) {
        errors.push({ path: 'embeds', code: 'BASE_TYPE_MAX_LENGTH', message: `Must be ${EMBEDS_MAX} or fewer in length.` });
      }
    }
    if ('components' in body) components = objectList(body.components, 'components', errors);

    const requested = typeof body.flags === 'number' ? body.flags : null;
    const keptFlags = message.flags & ~settableFlags & ~MESSAGE_FLAG.loading;
    const flags = requested === null ? message.flags & ~MESSAGE_FLAG.loading : keptFlags | (requested & settableFlags);

    if ((flags & MESSAGE_FLAG.isComponentsV2) !== 0) {
      if (content !== '') {
        errors.push({
          path: 'content',
          code: 'MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2',
          message: "The 'content' field cannot be used when using MessageFlags.IS_COMPONENTS_V2",
        });
      }
    } else {
      validateLegacyComponents(components, errors);
    }

    const attachments = this.resolveAttachments(message, body, files, attachmentSizeLimit, errors);
    if (errors.length > 0) throw new DiscordApiError('invalidFormBody', errors);
    if (content === '' && embeds.length === 0 && components.length === 0 && attachments.length === 0) {
      throw new DiscordApiError('emptyMessage');
    }
    return { content, embeds, components, flags, attachments };
  }

  /**
   * Discord's rule (Reference › Uploading Files; Message › Edit Message): `attachments` lists what the message keeps,
   * existing ones by id and new ones by the index n of `files[n]`; without it, existing attachments stay and every
   * uploaded file is added.
   */
  private resolveAttachments(
    message: StoredMessage,
    body: JsonObject,
    files: UploadedFile[],
    sizeLimit: number,
    errors: FieldError[],
  ): FakeAttachment[] {
    for (const file of files) {
      if (file.data.length > sizeLimit) throw new DiscordApiError('requestTooLarge');
    }
    const uploaded = new Map(files.map((file) => [/^files\[(\d+)\]$/.exec(file.field)?.[1] ?? file.field, file]));
    const result: FakeAttachment[] = [];
    const used = new Set<string>();
    if (Array.isArray(body.attachments)) {
      body.attachments.forEach((entry, index) => {
        const id = isJsonObject(entry) ? entry.id : undefined;
        const key = typeof id === 'number' ? String(id) : id;
        const description = isJsonObject(entry) && typeof entry.description === 'string' ? entry.description : null;
        const existing = typeof key === 'string' ? message.attachments.find((attachment) => attachment.id === key) : undefined;
        const file = typeof key === 'string' ? uploaded.get(key) : undefined;
        if (existing) result.push({ ...existing, description: description ?? existing.description });
        else if (file) {
          used.add(key as string);
          result.push(this.newAttachment(message, file, description));
        } else {
          errors.push({ path: `attachments.${index}.id`, code: 'ATTACHMENT_NOT_FOUND', message: `Unknown attachment or file "${String(key)}".` });
        }
      });
    } else {
      result.push(...message.attachments);
    }
    for (const [key, file] of uploaded) if (!used.has(key)) result.push(this.newAttachment(message, file, null));
    if (result.length > ATTACHMENTS_MAX) {
      errors.push({ path: 'attachments', code: 'BASE_TYPE_MAX_LENGTH', message: `Must be ${ATTACHMENTS_MAX} or fewer in length.` });
    }
    return result;
  }

  private newAttachment(message: StoredMessage, file: UploadedFile, description: string | null): FakeAttachment {
    const id = this.nextId();
    return {
      id,
      filename: file.name,
      size: file.data.length,
      contentType: file.contentType,
      description,
      url: `${this.fileOrigin}/attachments/${message.channelId}/${id}/${encodeURIComponent(file.name)}`,
      data: file.data,
    };
  }
}

function attachmentJson(attachment: FakeAttachment, messageFlags: number): JsonObject {
  return {
    id: attachment.id,
    filename: attachment.filename,
    size: attachment.size,
    url: attachment.url,
    proxy_url: attachment.url,
    ...(attachment.contentType === null ? {} : { content_type: attachment.contentType }),
    ...(attachment.description === null ? {} : { description: attachment.description }),
    ...((messageFlags & MESSAGE_FLAG.ephemeral) !== 0 ? { ephemeral: true } : {}),
  };
}

function objectList(value: Json | undefined, path: string, errors: FieldError[]): JsonObject[] {
  if (value === null || value === undefined) return [];
  if (Array.isArray(value) && value.every(isJsonObject)) return value;
  errors.push({ path, code: 'BASE_TYPE_ARRAY', message: 'Must be an array of objects.' });
  return [];
}

/** Components › Reference limits for action rows and buttons (legacy, non-V2 messages). */
function validateLegacyComponents(rows: JsonObject[], errors: FieldError[]): void {
  if (rows.length > ACTION_ROWS_MAX) {
    errors.push({ path: 'components', code: 'BASE_TYPE_BAD_LENGTH', message: `Must be between 0 and ${ACTION_ROWS_MAX} in length.` });
  }
  const customIds = new Set<string>();
  rows.forEach((row, r) => {
    if (row.type !== COMPONENT_TYPE.actionRow) {
      errors.push({ path: `components.${r}.type`, code: 'UNION_TYPE_CHOICES', message: 'Top-level components must be action rows (type 1) without IS_COMPONENTS_V2.' });
      return;
    }
    const children = Array.isArray(row.components) ? row.components : [];
    if (children.length < 1 || children.length > ROW_COMPONENTS_MAX) {
      errors.push({ path: `components.${r}.components`, code: 'BASE_TYPE_BAD_LENGTH', message: `Must be between 1 and ${ROW_COMPONENTS_MAX} in length.` });
    }
    children.forEach((child, c) => {
      const path = `components.${r}.components.${c}`;
      if (!isJsonObject(child) || child.type !== COMPONENT_TYPE.button) return;
      if (typeof child.label === 'string' && child.label.length > BUTTON_LABEL_MAX) {
        errors.push({ path: `${path}.label`, code: 'BASE_TYPE_MAX_LENGTH', message: `Must be ${BUTTON_LABEL_MAX} or fewer in length.` });
      }
      if (child.style === BUTTON_STYLE_LINK) {
        if (typeof child.url !== 'string') errors.push({ path: `${path}.url`, code: 'BASE_TYPE_REQUIRED', message: 'A link button needs a url.' });
        return;
      }
      const customId = child.custom_id;
      if (typeof customId !== 'string' || customId.length < 1 || customId.length > CUSTOM_ID_MAX) {
        errors.push({ path: `${path}.custom_id`, code: 'BASE_TYPE_BAD_LENGTH', message: `Must be between 1 and ${CUSTOM_ID_MAX} in length.` });
      } else if (customIds.has(customId)) {
        errors.push({ path: `${path}.custom_id`, code: 'COMPONENT_CUSTOM_ID_DUPLICATED', message: 'Component custom id cannot be duplicated' });
      } else customIds.add(customId);
    });
  });
}

function findButtons(node: Json): FakeButton[] {
  if (Array.isArray(node)) return node.flatMap(findButtons);
  if (!isJsonObject(node)) return [];
  if (node.type === COMPONENT_TYPE.button) {
    return [
      {
        customId: typeof node.custom_id === 'string' ? node.custom_id : null,
        label: typeof node.label === 'string' ? node.label : null,
        style: typeof node.style === 'number' ? node.style : 0,
        url: typeof node.url === 'string' ? node.url : null,
        disabled: node.disabled === true,
      },
    ];
  }
  return [...findButtons(node.components ?? null), ...findButtons(node.accessory ?? null)];
}
