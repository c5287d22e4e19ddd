import { describe, expect, it } from 'vitest';
import { MAX_REPLAYS } from '../../shared/actions/command';
import { replayStep, type ReplayStep } from '../../shared/actions/replay';
import type { LedgerEntry, LedgerState } from '../../shared/ledger/ledger';

/** The rules of a replay, row by row: an entry's states so far (the last is where it stands) and what a replay does. */
const KEY = `${'a'.repeat(40)}.revokeSessions.h${'b'.repeat(32)}`;

function entry(states: LedgerState[], replays?: number): LedgerEntry {
  const at = '2026-12-01T12:00:00.000Z';
  return {
    key: KEY,
    kind: 'revokeSessions',
    target: { type: 'user', id: '6e7b768e-07e2-4810-8459-485f84f8f204' },
    params: {},
    mode: 'enforce',
    reason: 'phished',
    source: { type: 'manual', subject: 'request' },
    state: states.at(-1) as LedgerState,
    createdAt: at,
    updatedAt: at,
    history: states.map((state) => ({ at, state, by: 'engine' })),
    attempts: [],
    ...(replays !== undefined && { replays }),
    etag: 'e',
  };
}

const refused = (state: string): ReplayStep => ({
  step: 'refuse',
  code: 'NotReplayable',
  why: `action ${KEY} is ${state}: only a failed or dead-lettered action can be replayed`,
});

describe('replayStep', () => {
  it.each<[string, LedgerEntry, ReplayStep]>([
    ['failed: replay 1', entry(['planned', 'queued', 'running', 'failed']), { step: 'replan', replay: 1 }],
    ['dead-lettered: replay 1', entry(['planned', 'queued', 'dead-lettered']), { step: 'replan', replay: 1 }],
    ['failed after two replays: replay 3', entry(['planned', 'queued', 'failed', 'planned', 'queued', 'failed'], 2), { step: 'replan', replay: 3 }],
    // An entry without `replays` counts them in its history: each return to planned after the first event was one.
    ['failed, replays counted in its history', entry(['planned', 'queued', 'failed', 'planned', 'queued', 'failed']), { step: 'replan', replay: 2 }],
    ['a replay the queue did not take: that replay again', entry(['planned', 'queued', 'failed', 'planned'], 1), { step: 'resend', replay: 1 }],
    ['planned after a dead letter: that replay again', entry(['planned', 'queued', 'dead-lettered', 'planned'], 1), { step: 'resend', replay: 1 }],
    ['planned, never sent: on its way already', entry(['planned']), refused('planned')],
    ['approved, not yet sent: the approval sends it', entry(['pending-approval', 'planned'], 1), refused('planned')],
    ['planned after waiting for data', entry(['waiting', 'planned']), refused('planned')],
    ['queued', entry(['planned', 'queued']), refused('queued')],
    ['running', entry(['planned', 'queued', 'running']), refused('running')],
    ['succeeded', entry(['planned', 'queued', 'running', 'succeeded']), refused('succeeded')],
    ['pending approval', entry(['pending-approval']), refused('pending-approval')],
    ['blocked', entry(['blocked']), refused('blocked')],
    ['denied', entry(['pending-approval', 'denied']), refused('denied')],
    ['rolled back', entry(['planned', 'queued', 'running', 'succeeded', 'rolled-back']), refused('rolled-back')],
    [
      'replayed as often as a MessageId can count',
      entry(['planned', 'queued', 'failed'], MAX_REPLAYS),
      { step: 'refuse', code: 'NotReplayable', why: `action ${KEY} was replayed ${MAX_REPLAYS} times: request it anew` },
    ],
  ])('%s', (_name, given, step) => {
    expect(replayStep(given)).toEqual(step);
  });
});
