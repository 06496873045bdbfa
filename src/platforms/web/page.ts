// The playground page: a few plain files (HTML, CSS, one script) read from public/ at start and served as they are,
// with no CDN and no build, and the login form that turns a WEB_TOKEN into an HttpOnly session cookie.

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { SESSION_COOKIE, SESSION_MAX_AGE_SECONDS, type Auth } from './auth.js';
import type { WebContext } from './context.js';

const FILES = {
  '/': { name: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { name: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { name: 'style.css', type: 'text/css; charset=utf-8' },
  '/favicon.svg': { name: 'favicon.svg', type: 'image/svg+xml' },
} as const;

export type Page = { files: Record<keyof typeof FILES, Buffer>; login: string };

/**
 * The folder of the page's files: beside this module when it runs from the sources (tests), else in the sources
 * that `dist/` was built from (`npm start`), since tsc copies no files but scripts.
 */
export function publicDir(): string {
  const candidates = [new URL('./public/', import.meta.url), new URL('../../../../src/platforms/web/public/', import.meta.url)].map((url) => fileURLToPath(url));
  const found = candidates.find((dir) => existsSync(`${dir}index.html`));
  if (!found) throw new Error(`the web page's files are missing: looked for index.html in ${candidates.join(' and ')}`);
  return found;
}

export function loadPage(dir = publicDir()): Page {
  const files = Object.fromEntries(Object.entries(FILES).map(([path, file]) => [path, readFileSync(`${dir}${file.name}`)])) as Page['files'];
  return { files, login: readFileSync(`${dir}login.html`, 'utf8') };
}

/** Only this origin's own files run, load or are posted to; nothing inline. */
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function registerPage(app: FastifyInstance, _context: WebContext, options: { auth: Auth; page: Page }): void {
  const { auth, page } = options;
  for (const [path, file] of Object.entries(FILES) as [keyof typeof FILES, (typeof FILES)[keyof typeof FILES]][]) {
    app.get(path, async (_request, reply) =>
      reply.type(file.type).header('Content-Security-Policy', CONTENT_SECURITY_POLICY).header('Cache-Control', 'no-cache').send(page.files[path]),
    );
  }

  const loginPage = (message: string) => page.login.replace('<!--message-->', message ? `<p class="refusal" role="alert">${escapeHtml(message)}</p>` : '');

  app.get('/login', async (_request, reply) => {
    if (!auth.required) return reply.redirect('/', 303);
    return reply.type('text/html; charset=utf-8').header('Content-Security-Policy', CONTENT_SECURITY_POLICY).send(loginPage(''));
  });

  app.post<{ Body: Record<string, unknown> | undefined }>('/login', async (request, reply) => {
    if (!auth.required) return reply.redirect('/', 303);
    const candidate = typeof request.body?.token === 'string' ? request.body.token.trim() : '';
    const token = candidate ? auth.matchToken(candidate) : undefined;
    if (!token) {
      return reply
        .code(401)
        .type('text/html; charset=utf-8')
        .header('Content-Security-Policy', CONTENT_SECURITY_POLICY)
        .send(loginPage('That is not an access token of this server; check WEB_TOKEN in its settings.'));
    }
    void reply.setCookie(SESSION_COOKIE, auth.sessionFor(token), {
      httpOnly: true,
      sameSite: 'strict',
      path: '/',
      maxAge: SESSION_MAX_AGE_SECONDS,
      secure: request.protocol === 'https',
    });
    return reply.redirect('/', 303);
  });

  app.post('/logout', async (_request, reply) => {
    void reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return reply.redirect('/login', 303);
  });
}
