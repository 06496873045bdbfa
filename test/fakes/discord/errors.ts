// The error answers the fake gives, with Discord's status, JSON code and message (Topics › Opcodes and Status Codes).

import type { JsonObject } from './objects.js';

export const DISCORD_ERRORS = {
  unauthorized: { status: 401, code: 0, message: '401: Unauthorized' },
  notFound: { status: 404, code: 0, message: '404: Not Found' },
  methodNotAllowed: { status: 405, code: 0, message: '405: Method Not Allowed' },
  unknownChannel: { status: 404, code: 10003, message: 'Unknown Channel' },
  unknownGuild: { status: 404, code: 10004, message: 'Unknown Guild' },
  unknownMessage: { status: 404, code: 10008, message: 'Unknown Message' },
  unknownUser: { status: 404, code: 10013, message: 'Unknown User' },
  unknownWebhook: { status: 404, code: 10015, message: 'Unknown Webhook' },
  unknownInteraction: { status: 404, code: 10062, message: 'Unknown interaction' },
  unknownApplicationCommand: { status: 404, code: 10063, message: 'Unknown application command' },
  requestTooLarge: { status: 413, code: 40005, message: 'Request entity too large' },
  alreadyAcknowledged: { status: 400, code: 40060, message: 'Interaction has already been acknowledged.' },
  missingAccess: { status: 403, code: 50001, message: 'Missing Access' },
  emptyMessage: { status: 400, code: 50006, message: 'Cannot send an empty message' },
  invalidWebhookToken: { status: 401, code: 50027, message: 'Invalid Webhook Token' },
  invalidFormBody: { status: 400, code: 50035, message: 'Invalid Form Body' },
  invalidJson: { status: 400, code: 50109, message: 'The request body contains invalid JSON.' },
} as const satisfies Record<string, { status: number; code: number; message: string }>;

export type DiscordErrorName = keyof typeof DISCORD_ERRORS;

/** One field error of a 50035 answer: `path` like `components.0.components.1.custom_id`. */
export interface FieldError {
  path: string;
  code: string;
  message: string;
}

/** An error answer on its way to the client; the router turns it into the status and JSON body Discord would send. */
export class DiscordApiError extends Error {
  readonly status: number;
  readonly body: JsonObject;

  constructor(name: DiscordErrorName, fieldErrors: FieldError[] = []) {
    const { status, code, message } = DISCORD_ERRORS[name];
    super(`${status} ${code} ${message}${fieldErrors.map((error) => `; ${error.path}: ${error.message}`).join('')}`);
    this.status = status;
    this.body = fieldErrors.length === 0 ? { message, code } : { message, code, errors: nestFieldErrors(fieldErrors) };
  }
}

/** Discord nests form errors by path: `{ content: { _errors: [{ code, message }] } }`. */
function nestFieldErrors(fieldErrors: FieldError[]): JsonObject {
  const root: JsonObject = {};
  for (const { path, code, message } of fieldErrors) {
    let node = root;
    for (const key of path.split('.')) {
      const child = node[key];
      node = typeof child === 'object' && child !== null && !Array.isArray(child) ? child : (node[key] = {});
    }
    const list = node._errors;
    node._errors = [...(Array.isArray(list) ? list : []), { code, message }];
  }
  return root;
}
