import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';

/** What a handler answers, for entry points that build it in a helper (they import nothing of @azure/functions). */
export type { HttpResponseInit };
import { authenticate } from '../auth/authenticate';
import { AuthError, authorize, type Caller, type Role } from '../auth/caller';
import { config } from '../config';
import { ConfigError, InputError, quote, RefusedError } from '../errors';
import { parseJson } from '../json';
import { logger, withLogSink, type Logger } from '../log';
import { readAtMost } from '../streams';
import { functionsHostPresent, registry, type HttpMethod } from './registry';

/**
 * Who may call a route. Every HTTP function must state one: Node v4 functions default to anonymous, so the guard is
 * ours to apply (reference/security.md), and a test fails if a registered route has none.
 * - `roles`: a valid token carrying one of these app roles.
 * - `public`: anyone gets the public answer; the handler sees the caller only if credentials were sent and valid,
 *   and must check `detailRoles` before showing more.
 */
export type AuthRequirement = { roles: readonly Role[] } | { public: true; detailRoles: readonly Role[] };

export interface HttpCall {
  request: HttpRequest;
  /** The parsed JSON body, for routes declared with `body: 'json'`. */
  body: unknown;
  caller: Caller | undefined;
  log: Logger;
  context: InvocationContext;
}

export interface HttpFunctionSpec {
  name: string;
  /** Route below /api, as in Azure (host.json routePrefix). */
  route: string;
  methods: readonly HttpMethod[];
  auth: AuthRequirement;
  body?: 'json';
  handle(call: HttpCall): Promise<HttpResponseInit>;
}

export type HttpHandler = (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>;

/**
 * Register an HTTP function and return its handler (exported separately so the local host and tests can call it).
 * The handler applies, in this order, the checks every route shares: method (405), declared size (413), caller
 * (401/403/503), body (400/413/415); then maps every error to a precise status. Bad input never becomes a 5xx.
 */
export function defineHttpFunction(spec: HttpFunctionSpec): HttpHandler {
  const handler: HttpHandler = (request, context) => withLogSink(context, () => handle(spec, request, context));
  registry.http.push({ name: spec.name, route: spec.route, methods: spec.methods, auth: spec.auth, handler });
  // authLevel anonymous: function keys are shared secrets, not authentication; the guard above validates Entra tokens.
  if (functionsHostPresent()) app.http(spec.name, { route: spec.route, methods: [...spec.methods], authLevel: 'anonymous', handler });
  return handler;
}

async function handle(spec: HttpFunctionSpec, request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const log = logger().child({ invocationId: context.invocationId, function: spec.name });
  try {
    if (!spec.methods.includes(request.method as HttpMethod)) {
      return problem(405, 'MethodNotAllowed', `${request.method} is not allowed on /api/${spec.route}: use ${spec.methods.join(', ')}`, context, {
        Allow: spec.methods.join(', '),
      });
    }
    const settings = config();
    const declared = Number(request.headers.get('content-length') ?? '0');
    if (declared > settings.maxBodyBytes) return tooLarge(settings.maxBodyBytes, context);

    const caller = await authenticate(request.headers, settings);
    if ('roles' in spec.auth) {
      if (!caller) throw new AuthError(401, 'no credentials: send "Authorization: Bearer <access token>" for this API');
      authorize(caller, spec.auth.roles);
    }

    let body: unknown;
    if (spec.body === 'json') {
      const text = await readBodyCapped(request, settings.maxBodyBytes);
      if (text === undefined) return tooLarge(settings.maxBodyBytes, context);
      if (text.trim() === '') {
        throw new InputError(
          'body',
          'is empty: post a Sentinel incident as JSON (the Logic Apps designer\'s "Run trigger" sends no body; run the playbook from an incident instead)',
        );
      }
      const unsupported = unsupportedMediaType(request.headers.get('content-type') ?? '');
      if (unsupported) return problem(415, 'UnsupportedMediaType', unsupported, context);
      body = parseJson(text);
    }
    return await spec.handle({ request, body, caller, log, context });
  } catch (error) {
    return errorResponse(error, log, context);
  }
}

/** Why a body of this Content-Type is refused (415), or undefined for JSON in UTF-8. */
export function unsupportedMediaType(contentType: string): string | undefined {
  if (!/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(contentType))
    return `Content-Type must be application/json, got ${contentType ? quote(contentType) : 'none'}`;
  // JSON between systems is UTF-8 (RFC 8259); a body declared otherwise would be read as garbage.
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(contentType)?.[1];
  if (charset !== undefined && !/^utf-?8$/i.test(charset)) return `JSON must be sent as UTF-8, got charset=${quote(charset)}`;
  return undefined;
}

function errorResponse(error: unknown, log: Logger, context: InvocationContext): HttpResponseInit {
  if (error instanceof InputError) return problem(400, 'BadRequest', error.message, context, {}, error.path || undefined);
  if (error instanceof AuthError) {
    log.warn({ status: error.status, problem: error.message }, 'request refused');
    const code = error.status === 401 ? 'Unauthorized' : error.status === 403 ? 'Forbidden' : 'AuthUnavailable';
    const headers: Record<string, string> = error.status === 401 ? { 'WWW-Authenticate': 'Bearer' } : error.status === 503 ? { 'Retry-After': '30' } : {};
    return problem(error.status, code, error.message, context, headers);
  }
  if (error instanceof RefusedError) {
    const refused = problem(error.status, error.code, error.message, context);
    return error.action === undefined ? refused : { ...refused, jsonBody: { ...(refused.jsonBody as object), action: error.action } };
  }
  if (error instanceof ConfigError) {
    log.error({ problem: error.message }, 'engine misconfigured');
    return problem(503, 'NotConfigured', error.message, context, { 'Retry-After': '60' });
  }
  if (error instanceof Error && error.name === 'QueueUnavailableError') {
    return problem(503, 'QueueUnavailable', error.message, context, { 'Retry-After': '10' });
  }
  // A bug, not the caller's fault: log it in full, tell the caller only where to look.
  log.error({ err: error }, 'unhandled error');
  return problem(500, 'InternalError', `internal error; quote invocation ${context.invocationId} when reporting it`, context);
}

function tooLarge(cap: number, context: InvocationContext): HttpResponseInit {
  return problem(413, 'PayloadTooLarge', `the body exceeds ${cap} bytes (RESPONDER_MAX_BODY_BYTES)`, context);
}

export function problem(
  status: number,
  code: string,
  message: string,
  context: InvocationContext,
  headers: Record<string, string> = {},
  target?: string,
): HttpResponseInit {
  return { status, headers, jsonBody: { error: { code, message, ...(target && { target }), invocationId: context.invocationId } } };
}

/** Read at most `cap` bytes as UTF-8 text; undefined when the body is larger. */
async function readBodyCapped(request: HttpRequest, cap: number): Promise<string | undefined> {
  const bytes = await readAtMost(request.body, cap);
  if (bytes === undefined) return undefined;
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new InputError('body', 'is not UTF-8 text: JSON must be sent as UTF-8');
  }
}

/** Strict: bytes that are not UTF-8 are refused rather than replaced by U+FFFD. A leading byte order mark is dropped. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });
