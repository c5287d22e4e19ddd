/** What a renewal tells its keep-alive: go on, or stop (the claim is lost or no longer to be kept). */
export type RenewalResult = 'renewed' | 'stop';

/** A running keep-alive. */
export interface KeepAlive {
  /** No more renewals; resolves once one in flight has ended, so the caller's next write cannot race it. */
  stop(): Promise<void>;
}

/**
 * Keep a lease alive: `renew` every `intervalMs` until stopped or until it answers 'stop'. The rules (what to renew,
 * what a conflict means) are the caller's; this is only the loop. One renewal at a time: a tick that finds the last one
 * still running (a slow store) is skipped. A renewal that throws is reported and tried again at the next tick, so a
 * failing store never ends the execution it keeps alive.
 */
export function keepAlive(renew: () => Promise<RenewalResult>, intervalMs: number, onError: (error: unknown) => void): KeepAlive {
  let inFlight: Promise<void> | undefined;
  let stopped = false;
  const halt = () => {
    stopped = true;
    clearInterval(timer);
  };
  const timer = setInterval(() => {
    if (stopped || inFlight) return;
    inFlight = renew()
      .then((result) => {
        if (result === 'stop') halt();
      }, onError)
      .finally(() => (inFlight = undefined));
  }, intervalMs);
  // A lease is worth keeping only while something else keeps the process busy.
  timer.unref();
  return {
    async stop() {
      halt();
      await inFlight;
    },
  };
}
