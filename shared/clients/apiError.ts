/**
 * What every client adapter (Graph, Defender, ARM) raises when an API call fails: the HTTP status (0 when no answer
 * came back), the API's error code, and the wait it asked for. The failure classifier reads only this.
 */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly api: 'graph' | 'defender' | 'arm',
    /** HTTP status, or 0 for a network failure or time-out. */
    readonly status: number,
    /** The API's error code (`Authorization_RequestDenied`, `ActiveRequestAlreadyExists`, …). */
    readonly code: string | undefined,
    message: string,
    /** From Retry-After, when the API sent one. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** Retry-After as seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * A next link to follow, if it leads to the API's own origin: one kept in the shared records (a sweep's place) that was
 * changed to lead elsewhere would be sent the engine's token, and its answers taken for the API's. Refused for good
 * (400): the sweep drops the place, and its next run starts from the top.
 */
export function nextLinkOn(api: ApiError['api'], link: string, origin: string): string {
  const parsed = URL.canParse(link) ? new URL(link) : undefined;
  if (parsed?.origin !== origin || parsed.username !== '' || parsed.password !== '')
    throw new ApiError(api, 400, 'ForeignNextLink', `a next link that does not lead to ${origin}: not followed`);
  return link;
}
