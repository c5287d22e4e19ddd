/** What a sandbox route sees and answers. */
export interface SandboxRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
  /** The audience of the bearer token presented (the API origin it was issued for), or undefined. */
  audience: string | undefined;
  /** The origin the request was made to: where the links in an answer point. */
  origin: string;
}

export interface SandboxAnswer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export type Route = (request: SandboxRequest) => SandboxAnswer | undefined;

/** A Graph- / Defender- / ARM-style error body. */
export const apiError = (status: number, code: string, message: string, headers?: Record<string, string>): SandboxAnswer => ({
  status,
  body: { error: { code, message } },
  ...(headers && { headers }),
});

/**
 * A sliding-window quota, as the real APIs enforce them: each call counts; past `max` in `windowMs` the answer is a
 * 429 whose Retry-After says when the oldest call leaves the window. Returns that 429, or undefined under the quota.
 */
export function slidingQuota(
  now: () => number,
  limit: () => { max: number; windowMs: number },
  message: string,
  /** ID Protection's 429 says nothing of when to come back (reference/idprotection.md). */
  { retryAfter: sayWhen = true }: { retryAfter?: boolean } = {},
): () => SandboxAnswer | undefined {
  const calls: number[] = [];
  return () => {
    const at = now();
    const { max, windowMs } = limit();
    while (calls.length && at - (calls[0] as number) >= windowMs) calls.shift();
    if (calls.length >= max) {
      const retryAfter = Math.max(1, Math.ceil((windowMs - (at - (calls[0] ?? at))) / 1000));
      return apiError(429, 'TooManyRequests', message, sayWhen ? { 'retry-after': String(retryAfter) } : undefined);
    }
    calls.push(at);
    return undefined;
  };
}

/**
 * One page of a collection, with a link to the next when there is one, as OData pages: Defender counts with `$skip`;
 * Graph's links carry an opaque `$skiptoken` (here the count too), ARM's a `$skipToken` under `nextLink`; a client
 * follows them as given.
 */
export function pageOf(
  items: unknown[],
  size: number,
  request: SandboxRequest,
  { param = '$skip', link = '@odata.nextLink' }: { param?: '$skip' | '$skiptoken' | '$skipToken'; link?: '@odata.nextLink' | 'nextLink' } = {},
): SandboxAnswer {
  const skip = Number(request.query.get(param) ?? 0);
  const body: Record<string, unknown> = { value: items.slice(skip, skip + size) };
  if (skip + size < items.length) {
    const next = new URL(request.path, request.origin);
    for (const [name, value] of request.query) if (name !== param) next.searchParams.set(name, value);
    next.searchParams.set(param, String(skip + size));
    body[link] = next.toString();
  }
  return { status: 200, body };
}
