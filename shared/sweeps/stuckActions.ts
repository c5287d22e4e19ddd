import type { LedgerEntry } from '../ledger/ledger';
import type { SweepDefinition, SweepPage, SweepTimings } from './sweep';

/**
 * stuckActions: actions the pipeline left behind: planned and never sent (the relay did not retry after a 503), queued
 * whose message is gone (none is due and nothing has happened for an hour), running whose worker died after its
 * message was settled (its lease long lapsed). Each is sent again under its own MessageId: a copy still in the queue is
 * dropped as a duplicate, and a second delivery finds the action claimed or done, so nothing runs twice. The ledger is
 * read whole (one page). Scheduled well after the relay's retries and a lapsed lease's takeover, which resolve most of
 * what it would find.
 */
export const stuckActions: SweepDefinition = {
  setting: 'RESPONDER_SWEEP_STUCKACTIONS',
  schedule: '0 7,37 * * * *',
  async page(context) {
    const now = context.now().getTime();
    const page: SweepPage = { findings: [], passedOver: [] };
    for (const state of ['planned', 'queued', 'running'] as const) {
      for (const entry of await context.ledger.list({ state })) {
        const why = stuckFor(entry, now, context.timings);
        if (why === undefined) continue;
        page.findings.push({
          subject: entry.key,
          act: async (dryRun) => {
            if (dryRun) return { summary: `would send again: ${why}`, planned: 1 };
            await context.engine.resend(entry, why, context.by, context.log);
            return { summary: `sent again: ${why}`, planned: 1 };
          },
        });
      }
    }
    return page;
  },
};

/** Why `entry` is stuck, or undefined if it is on its way (see stuckActions). */
export function stuckFor(
  entry: LedgerEntry,
  now: number,
  timings: Pick<SweepTimings, 'plannedStuckMs' | 'queuedStuckMs' | 'runningStuckMs'>,
): string | undefined {
  const last = entry.history.at(-1);
  const since = Date.parse(last?.at ?? entry.updatedAt);
  if (entry.state === 'planned' && now - since >= timings.plannedStuckMs) return `planned since ${new Date(since).toISOString()}, never queued`;
  if (entry.state === 'queued' && now - since >= timings.queuedStuckMs) {
    // A deferral or a turn says when its message is due: until then it is waiting, not lost.
    const due = Math.max(0, ...[...(last?.note ?? '').matchAll(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z/g)].map((m) => Date.parse(m[0])));
    if (due + timings.queuedStuckMs <= now) return `queued since ${new Date(since).toISOString()} with nothing due`;
  }
  const lapsed = entry.lease ? Date.parse(entry.lease.until) : Number.NaN;
  if (entry.state === 'running' && now - lapsed >= timings.runningStuckMs) return `running, its lease lapsed at ${new Date(lapsed).toISOString()}`;
  return undefined;
}
