/**
 * The command line talking to a running engine (the local host, or a deployed one): GET or POST below its /api with a
 * bearer token, over HTTPS or plain HTTP to this machine only, reading a bounded answer within a deadline.
 */
import { readAtMost } from '../shared/streams';
import { LOOPBACK_NAMES } from './localToken';

/** A decision can be larger than the incident it is made for (1 MiB by default), a page of actions larger still. */
export const ANSWER_LIMIT_BYTES = 16 * 2 ** 20;
export const ANSWER_TIMEOUT_MS = 30_000;

/** The request failed before the engine answered it, or its answer could not be read. */
export class EngineRequestError extends Error {
  override readonly name = 'EngineRequestError';
}

export interface EngineAnswer {
  status: number;
  statusText: string;
  contentType: string;
  /** Where a redirect pointed: never followed, so the token goes only where --url says. */
  location?: string;
  body: string;
}

/** The engine's base URL from --url (or its alias --host, named as typed), or why it is refused (a usage error). */
export type EngineUrl = { valid: true; url: URL } | { valid: false; problem: string };

export function engineBaseUrl(text: string, option = '--url'): EngineUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { valid: false, problem: `${option} needs the engine's http(s) URL, got ${JSON.stringify(text)}` };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    return { valid: false, problem: `${option} needs an http(s) URL, got ${url.protocol} in ${JSON.stringify(text)}` };
  if (url.protocol === 'http:' && !LOOPBACK_NAMES.has(url.hostname)) {
    return {
      valid: false,
      problem: `${option} ${url.origin}: plain http only to this machine (${[...LOOPBACK_NAMES].join(', ')}); the token must not cross a network in clear, use https://`,
    };
  }
  if (url.username || url.password) return { valid: false, problem: `${option} must not carry credentials: put the token in RESPONDER_TOKEN` };
  if (url.search || url.hash) return { valid: false, problem: `${option} is the engine's base URL, without a query or fragment, got ${JSON.stringify(text)}` };
  url.pathname = url.pathname.replace(/\/+$/, '');
  const route = /\/api(\/(plan|actions)(\/.*)?)?$/i;
  if (route.test(url.pathname))
    return { valid: false, problem: `${option} is the engine's base URL, without /api: ${url.origin}${url.pathname.replace(route, '')}` };
  return { valid: true, url };
}

/** The engine's base URL as the user reads it: no trailing slash. */
export function engineLabel(url: URL): string {
  return `${url.origin}${url.pathname === '/' ? '' : url.pathname}`;
}

export interface EngineCall {
  method: 'GET' | 'POST';
  /** Below the base URL, starting /api/: `/api/actions?state=queued`. */
  path: string;
  /** Sent as JSON. */
  body?: unknown;
  token: string;
  accept?: 'application/json' | 'text/plain';
  timeoutMs?: number;
  limitBytes?: number;
}

/** One call to the engine below `base`; the answer whatever its status, bounded in size and time. */
export async function callEngine(base: URL, call: EngineCall): Promise<EngineAnswer> {
  const { method, path, body, token, accept = 'application/json', timeoutMs = ANSWER_TIMEOUT_MS, limitBytes = ANSWER_LIMIT_BYTES } = call;
  if (!path.startsWith('/api/')) throw new Error(`not an engine route: ${path}`);
  const url = `${engineLabel(base)}${path}`;
  try {
    const res = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${token}`, accept, ...(body !== undefined && { 'content-type': 'application/json' }) },
      ...(body !== undefined && { body: JSON.stringify(body) }),
      redirect: 'manual',
      // Bounds the whole exchange, the body's reading included.
      signal: AbortSignal.timeout(timeoutMs),
    });
    const location = res.headers.get('location');
    return {
      status: res.status,
      statusText: res.statusText,
      contentType: res.headers.get('content-type') ?? '',
      ...(location !== null && { location }),
      body: await readCapped(res, limitBytes, url),
    };
  } catch (error) {
    if (error instanceof EngineRequestError) throw error;
    if ((error as Error).name === 'TimeoutError') throw new EngineRequestError(`${url} did not answer within ${timeoutMs / 1000} s`);
    const cause = (error as Error & { cause?: Error & { code?: string } }).cause;
    const refused = cause?.code === 'ECONNREFUSED' && LOOPBACK_NAMES.has(base.hostname) ? ' (is the local host running? npm start)' : '';
    throw new EngineRequestError(`cannot reach ${url}: ${cause?.message ?? (error as Error).message}${refused}`);
  }
}

/** The answer's body as JSON, when it says it is JSON and parses; else undefined (a gateway's page, a proxy's error). */
export function answerJson(answer: EngineAnswer): unknown {
  if (!/^application\/([\w.+-]+\+)?json\b/i.test(answer.contentType)) return undefined;
  try {
    return JSON.parse(answer.body);
  } catch {
    return undefined;
  }
}

/** The body as text, refused as soon as it is larger than `limit` bytes (by its declared length, or as it arrives). */
async function readCapped(res: Response, limit: number, url: string): Promise<string> {
  const tooLarge = () => new EngineRequestError(`the answer from ${url} exceeds ${limit} bytes: not an answer of the engine's`);
  if (Number(res.headers.get('content-length') ?? 0) > limit) {
    await res.body?.cancel();
    throw tooLarge();
  }
  const bytes = await readAtMost(res.body, limit);
  if (bytes === undefined) throw tooLarge();
  return new TextDecoder().decode(bytes);
}

/** An answer from another machine as this terminal may show it: control characters (escape sequences) made visible. */
export function printable(text: string): string {
  let shown = '';
  for (const c of text) {
    const code = c.charCodeAt(0);
    const control = (code < 0x20 && c !== '\n' && c !== '\t') || (code >= 0x7f && code <= 0x9f);
    shown += control ? `\\u${code.toString(16).padStart(4, '0')}` : c;
  }
  return shown;
}
