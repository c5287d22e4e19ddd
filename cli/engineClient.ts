/**
 * The command line asking a running engine (the local host, or a deployed one) for its plan: POST /api/plan with a
 * bearer token, over HTTPS or plain HTTP to this machine only, reading a bounded answer within a deadline.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../shared/errors';
import { readAtMost } from '../shared/streams';
import { LOCAL_TOKEN_FILE, LOOPBACK_NAMES } from './localToken';

/** A decision can be larger than the incident it is made for (1 MiB by default); an answer past this is not a plan. */
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
  /** Where a redirect pointed: never followed, so the token goes only where --host says. */
  location?: string;
  body: string;
}

/** The engine's base URL from --host, or why it is refused (a usage error). */
export type EngineUrl = { valid: true; url: URL } | { valid: false; problem: string };

export function engineBaseUrl(text: string): EngineUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { valid: false, problem: `--host needs the engine's http(s) URL, got ${JSON.stringify(text)}` };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    return { valid: false, problem: `--host needs an http(s) URL, got ${url.protocol} in ${JSON.stringify(text)}` };
  if (url.protocol === 'http:' && !LOOPBACK_NAMES.has(url.hostname)) {
    return {
      valid: false,
      problem: `--host ${url.origin}: plain http only to this machine (${[...LOOPBACK_NAMES].join(', ')}); the token must not cross a network in clear, use https://`,
    };
  }
  if (url.username || url.password) return { valid: false, problem: '--host must not carry credentials: put the token in RESPONDER_TOKEN' };
  if (url.search || url.hash) return { valid: false, problem: `--host is the engine's base URL, without a query or fragment, got ${JSON.stringify(text)}` };
  url.pathname = url.pathname.replace(/\/+$/, '');
  if (/\/api(\/plan)?$/i.test(url.pathname))
    return { valid: false, problem: `--host is the engine's base URL, without /api: ${url.origin}${url.pathname.replace(/\/api(\/plan)?$/i, '')}` };
  return { valid: true, url };
}

/** The engine's base URL as the user reads it: no trailing slash. */
export function engineLabel(url: URL): string {
  return `${url.origin}${url.pathname === '/' ? '' : url.pathname}`;
}

/**
 * The bearer token for the engine: RESPONDER_TOKEN when set; else, for this machine only, the token the local host wrote
 * where it was started (the command line runs from the same directory as `npm start`).
 */
export function bearerToken(url: URL, env: NodeJS.ProcessEnv, localTokenFile = LOCAL_TOKEN_FILE): string {
  const token = env.RESPONDER_TOKEN?.trim();
  if (token) return token;
  if (!LOOPBACK_NAMES.has(url.hostname)) {
    throw new ConfigError(
      `no token for ${url.origin}: set RESPONDER_TOKEN to an access token with the app role Responder.Read for the engine's audience (az account get-access-token --scope <RESPONDER_AUDIENCE>/.default --query accessToken -o tsv)`,
    );
  }
  try {
    const local = readFileSync(localTokenFile, 'utf8').trim();
    if (local) return local;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new ConfigError(`cannot read ${localTokenFile}: ${(error as Error).message}`);
  }
  throw new ConfigError(`no token for ${url.origin}: no ${localTokenFile} here (npm start writes it where it runs) and RESPONDER_TOKEN is not set`);
}

/** POST /api/plan below `base`, with `body` as JSON; the answer whatever its status, bounded in size and time. */
export async function postPlan(
  base: URL,
  body: unknown,
  options: { token: string; accept: 'text/plain' | 'application/json'; timeoutMs?: number; limitBytes?: number },
): Promise<EngineAnswer> {
  const { token, accept, timeoutMs = ANSWER_TIMEOUT_MS, limitBytes = ANSWER_LIMIT_BYTES } = options;
  const url = `${engineLabel(base)}/api/plan`;
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept },
      body: JSON.stringify(body),
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

/** The body as text, refused as soon as it is larger than `limit` bytes (by its declared length, or as it arrives). */
async function readCapped(res: Response, limit: number, url: string): Promise<string> {
  const tooLarge = () => new EngineRequestError(`the answer from ${url} exceeds ${limit} bytes: not the engine's plan`);
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
