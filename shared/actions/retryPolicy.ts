/**
 * The one retry policy (reference/servicebus.md, "The retry pattern"): exponential backoff with full jitter,
 * capped, and never sooner than the API asked (Retry-After). Randomness is injected so tests are deterministic.
 */
export const RETRY_POLICY = {
  /** Attempts in all, the first included; then the action is `failed`. */
  maxAttempts: 8,
  baseMs: 10_000,
  capMs: 15 * 60_000,
};

/** How long to wait before attempt `attempt + 1`, given the API's Retry-After if any. */
export function retryDelayMs(attempt: number, retryAfterMs: number | undefined, random: () => number = Math.random): number {
  const ceiling = Math.min(RETRY_POLICY.capMs, RETRY_POLICY.baseMs * 2 ** attempt);
  const jittered = Math.floor(random() * ceiling);
  return Math.max(retryAfterMs ?? 0, jittered, 1000);
}
