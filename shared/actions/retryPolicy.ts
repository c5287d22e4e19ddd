/**
 * The one retry policy (reference/servicebus.md, "The retry pattern"): exponential backoff with full jitter,
 * capped, and never sooner than the API asked (Retry-After). Randomness is injected so tests are deterministic.
 */
export interface RetryPolicy {
  /** Attempts in all, the first included; then the action is `failed`. */
  maxAttempts: number;
  /** The first backoff's ceiling (RESPONDER_RETRY_BASE_SECONDS); it doubles per attempt up to `capMs`. */
  baseMs: number;
  capMs: number;
}

export const RETRY_POLICY: RetryPolicy = {
  maxAttempts: 8,
  baseMs: 10_000,
  capMs: 15 * 60_000,
};

/** How long to wait before attempt `attempt + 1`, given the API's Retry-After if any; never less than a second (or the base, if smaller). */
export function retryDelayMs(
  attempt: number,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
  policy: RetryPolicy = RETRY_POLICY,
): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** attempt);
  const jittered = Math.floor(random() * ceiling);
  return Math.max(retryAfterMs ?? 0, jittered, Math.min(1000, policy.baseMs));
}
