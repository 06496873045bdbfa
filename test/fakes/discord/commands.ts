// Registered application commands, global and per guild: ids stable per name and type, a new version per write, limits checked.

import { DiscordApiError, type FieldError } from './errors.js';
import { isJsonObject, type Json, type JsonObject } from './objects.js';

const CHAT_INPUT = 1;
const NAME = /^[-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$/u;
const DESCRIPTION_MAX = 100;
const OPTIONS_MAX = 25;
const CHOICES_MAX = 25;

export class CommandStore {
  /** Keyed by guild id, '' for global commands; each list in registration order. */
  private readonly scopes = new Map<string, JsonObject[]>();
  private readonly nextId: () => string;
  private readonly applicationId: string;

  constructor(nextId: () => string, applicationId: string) {
    this.nextId = nextId;
    this.applicationId = applicationId;
  }

  list(guildId: string | null): JsonObject[] {
    return this.scopes.get(guildId ?? '') ?? [];
  }

  get(guildId: string | null, commandId: string): JsonObject {
    const command = this.list(guildId).find((candidate) => candidate.id === commandId);
    if (!command) throw new DiscordApiError('unknownApplicationCommand');
    return command;
  }

  /** The command a user would run by this name: the guild's own first, then the global one. */
  findByName(name: string, guildId: string | null): JsonObject | undefined {
    const inGuild = guildId === null ? undefined : this.list(guildId).find((command) => command.name === name);
    return inGuild ?? this.list(null).find((command) => command.name === name);
  }

  /** `PUT …/commands`: the body becomes the whole set; commands whose name and type survive keep their ids. */
  replaceAll(guildId: string | null, body: Json): JsonObject[] {
    if (!Array.isArray(body)) throw new DiscordApiError('invalidFormBody', [{ path: '_root', code: 'BASE_TYPE_ARRAY', message: 'Must be an array.' }]);
    const errors: FieldError[] = [];
    body.forEach((definition, index) => validateDefinition(definition, `${index}`, errors));
    if (errors.length > 0) throw new DiscordApiError('invalidFormBody', errors);
    const previous = this.list(guildId);
    const next = body.filter(isJsonObject).map((definition) => {
      const existing = previous.find((command) => sameCommand(command, definition));
      return this.stored(guildId, definition, typeof existing?.id === 'string' ? existing.id : this.nextId());
    });
    this.scopes.set(guildId ?? '', next);
    return next;
  }

  /** `POST …/commands`: creates, or overwrites the command with the same name and type. */
  upsert(guildId: string | null, body: Json): { command: JsonObject; created: boolean } {
    const errors: FieldError[] = [];
    validateDefinition(body, '_root', errors);
    if (errors.length > 0 || !isJsonObject(body)) throw new DiscordApiError('invalidFormBody', errors);
    const list = [...this.list(guildId)];
    const index = list.findIndex((command) => sameCommand(command, body));
    const command = this.stored(guildId, body, index === -1 ? this.nextId() : String(list[index].id));
    if (index === -1) list.push(command);
    else list[index] = command;
    this.scopes.set(guildId ?? '', list);
    return { command, created: index === -1 };
  }

  edit(guildId: string | null, commandId: string, body: Json): JsonObject {
    const current = this.get(guildId, commandId);
    if (!isJsonObject(body)) throw new DiscordApiError('invalidFormBody', [{ path: '_root', code: 'MODEL_TYPE_CONVERT', message: 'Must be an object.' }]);
    const merged = { ...current, ...body };
    const errors: FieldError[] = [];
    validateDefinition(merged, '_root', errors);
    if (errors.length > 0) throw new DiscordApiError('invalidFormBody', errors);
    const command = this.stored(guildId, merged, commandId);
    this.scopes.set(guildId ?? '', this.list(guildId).map((candidate) => (candidate.id === commandId ? command : candidate)));
    return command;
  }

  delete(guildId: string | null, commandId: string): void {
    this.get(guildId, commandId);
    this.scopes.set(guildId ?? '', this.list(guildId).filter((command) => command.id !== commandId));
  }

  private stored(guildId: string | null, definition: JsonObject, id: string): JsonObject {
    return {
      ...definition,
      id,
      application_id: this.applicationId,
      version: this.nextId(),
      type: definition.type ?? CHAT_INPUT,
      description: definition.description ?? '',
      default_member_permissions: definition.default_member_permissions ?? null,
      nsfw: definition.nsfw ?? false,
      ...(guildId === null
        ? { contexts: definition.contexts ?? null, integration_types: definition.integration_types ?? [0] }
        : { guild_id: guildId }),
    };
  }
}

function sameCommand(command: JsonObject, definition: JsonObject): boolean {
  return command.name === definition.name && (command.type ?? CHAT_INPUT) === (definition.type ?? CHAT_INPUT);
}

function validateDefinition(definition: Json, path: string, errors: FieldError[]): void {
  if (!isJsonObject(definition)) {
    errors.push({ path, code: 'MODEL_TYPE_CONVERT', message: 'Must be an object.' });
    return;
  }
  const chatInput = (definition.type ?? CHAT_INPUT) === CHAT_INPUT;
  validateNamed(definition, path, chatInput, errors);
  validateOptions(definition.options, `${path}.options`, errors);
}

/** Chat-input commands and all options need a lowercase name and a 1–100 character description. */
function validateNamed(item: JsonObject, path: string, chatInput: boolean, errors: FieldError[]): void {
  const { name, description } = item;
  if (typeof name !== 'string' || !NAME.test(name) || (chatInput && name !== name.toLowerCase())) {
    errors.push({ path: `${path}.name`, code: 'APPLICATION_COMMAND_INVALID_NAME', message: `Command name is invalid: ${JSON.stringify(name)}` });
  }
  if (chatInput && (typeof description !== 'string' || description.length < 1 || description.length > DESCRIPTION_MAX)) {
    errors.push({ path: `${path}.description`, code: 'BASE_TYPE_BAD_LENGTH', message: `Must be between 1 and ${DESCRIPTION_MAX} in length.` });
  }
}

function validateOptions(options: Json | undefined, path: string, errors: FieldError[]): void {
  if (options === undefined || options === null) return;
  if (!Array.isArray(options)) {
    errors.push({ path, code: 'BASE_TYPE_ARRAY', message: 'Must be an array.' });
    return;
  }
  if (options.length > OPTIONS_MAX) errors.push({ path, code: 'BASE_TYPE_MAX_LENGTH', message: `Must be ${OPTIONS_MAX} or fewer in length.` });
  options.forEach((option, index) => {
    const optionPath = `${path}.${index}`;
    if (!isJsonObject(option)) {
      errors.push({ path: optionPath, code: 'MODEL_TYPE_CONVERT', message: 'Must be an object.' });
      return;
    }
    validateNamed(option, optionPath, true, errors);
    if (Array.isArray(option.choices) && option.choices.length > CHOICES_MAX) {
      errors.push({ path: `${optionPath}.choices`, code: 'BASE_TYPE_MAX_LENGTH', message: `Must be ${CHOICES_MAX} or fewer in length.` });
    }
    validateOptions(option.options, `${optionPath}.options`, errors);
  });
}
