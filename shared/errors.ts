/**
 * Typed errors that cross module boundaries. HTTP adapters map them to status codes in one place
 * (shared/azure/httpFunction.ts), so a bad input can never surface as a 5xx.
 */

/** The caller sent something we cannot accept. `path` names the offending field (e.g. `object.properties.severity`). */
export class InputError extends Error {
  override readonly name = 'InputError';
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(path ? `${path}: ${problem}` : problem);
  }
}

/** Text from a request, quoted for an error message: cut at 40 characters, so a huge value is not echoed back. */
export function quote(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

/** The engine's own configuration (policy file, app settings) is unusable. Not the caller's fault: 503, not 400. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    readonly details: string[] = [],
  ) {
    super(details.length ? `${message}\n  - ${details.join('\n  - ')}` : message);
  }
}

/**
 * A well-formed request that the state of things refuses: no such action or target (404), a protected target or an
 * analyst approving their own request (403), an action in the wrong state for what was asked (409), a cap reached
 * (429). `action` is what the caller should see.
 */
export class RefusedError extends Error {
  override readonly name = 'RefusedError';
  constructor(
    readonly status: 403 | 404 | 409 | 429,
    readonly code: string,
    message: string,
    readonly action?: unknown,
  ) {
    super(message);
  }
}
