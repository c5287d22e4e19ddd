import type { LedgerEntry } from '../ledger/ledger';
import { MAX_REPLAYS } from './command';

/**
 * What asking to send an action again comes to: back to `planned` as replay number `replay`; or, for a replay the
 * queue did not take, that same replay sent again (its MessageId unchanged, so a copy the broker has is dropped); or
 * why not (409).
 */
export type ReplayStep = { step: 'replan'; replay: number } | { step: 'resend'; replay: number } | { step: 'refuse'; code: 'NotReplayable'; why: string };

/**
 * The rules of a replay, as a pure function: only an action that ended `failed` or `dead-lettered` is sent again. One
 * left `planned` by a replay whose send failed is that replay, not yet sent; any other `planned` one is on its way
 * already (its delivery, an approval or the stuckActions sweep sends it), and sending it from here could outrun the cap
 * its decision is still checking.
 */
export function replayStep(entry: LedgerEntry): ReplayStep {
  // An entry without `replays` counts them in its history: every return to `planned` after its first event was one.
  const replays = entry.replays ?? entry.history.filter((event, i) => i > 0 && event.state === 'planned').length;
  if (entry.state === 'failed' || entry.state === 'dead-lettered') {
    if (replays >= MAX_REPLAYS) return { step: 'refuse', code: 'NotReplayable', why: `action ${entry.key} was replayed ${replays} times: request it anew` };
    return { step: 'replan', replay: replays + 1 };
  }
  const before = entry.history.at(-2)?.state;
  if (entry.state === 'planned' && replays > 0 && (before === 'failed' || before === 'dead-lettered')) return { step: 'resend', replay: replays };
  return { step: 'refuse', code: 'NotReplayable', why: `action ${entry.key} is ${entry.state}: only a failed or dead-lettered action can be replayed` };
}
