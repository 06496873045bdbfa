// A small multipart/form-data parser (RFC 7578) for the bodies discord.js sends: payload_json plus files[n].

/** One part of a multipart body; `filename` and `contentType` are null when the part did not name them. */
export interface MultipartPart {
  name: string;
  filename: string | null;
  contentType: string | null;
  data: Buffer;
}

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

/** The boundary of a `multipart/form-data; boundary=…` content type, or null for any other type. */
export function multipartBoundary(contentType: string | undefined): string | null {
  if (contentType === undefined || !/^multipart\/form-data\b/i.test(contentType)) return null;
  const match = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return match ? (match[1] ?? match[2]) : null;
}

/**
 * Splits a multipart body into its parts, bytes untouched. Throws on a body that does not follow the format, naming
 * the byte offset where it went wrong.
 */
export function parseMultipart(body: Buffer, boundary: string): MultipartPart[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: MultipartPart[] = [];
  let position = body.indexOf(delimiter);
  if (position === -1) throw new Error(`multipart body: no "--${boundary}" delimiter found`);
  for (;;) {
    position += delimiter.length;
    if (body.subarray(position, position + 2).toString() === '--') return parts;
    if (!body.subarray(position, position + 2).equals(CRLF)) {
      throw new Error(`multipart body: expected CRLF after the delimiter at byte ${position}`);
    }
    const headersStart = position + 2;
    const headersEnd = body.indexOf(HEADER_END, headersStart);
    if (headersEnd === -1) throw new Error(`multipart body: part headers at byte ${headersStart} never end`);
    const dataStart = headersEnd + HEADER_END.length;
    const next = body.indexOf(Buffer.concat([CRLF, delimiter]), dataStart);
    if (next === -1) throw new Error(`multipart body: part at byte ${dataStart} has no closing delimiter`);
    parts.push({ ...parseHeaders(body.subarray(headersStart, headersEnd).toString('utf8')), data: body.subarray(dataStart, next) });
    position = next + CRLF.length;
  }
}

function parseHeaders(text: string): Omit<MultipartPart, 'data'> {
  let name: string | null = null;
  let filename: string | null = null;
  let contentType: string | null = null;
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    const header = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (header === 'content-type') contentType = value;
    if (header === 'content-disposition') {
      name = dispositionParameter(value, 'name');
      filename = dispositionParameter(value, 'filename');
    }
  }
  if (name === null) throw new Error(`multipart body: a part has no Content-Disposition name (headers: ${JSON.stringify(text)})`);
  return { name, filename, contentType };
}

/** Reads `key="value"` from a Content-Disposition header, undoing the %0A, %0D and %22 escapes that FormData applies. */
function dispositionParameter(disposition: string, key: string): string | null {
  const match = new RegExp(`;\\s*${key}="([^"]*)"`, 'i').exec(disposition);
  if (!match) return null;
  return match[1].replace(/%0A/gi, '\n').replace(/%0D/gi, '\r').replace(/%22/g, '"');
}
