import { describe, expect, it } from 'vitest';
import {
  actionDetail,
  actionLines,
  actionOf,
  age,
  deadLetterAnswerOf,
  deadLetterLines,
  decisionOutcome,
  replayOutcome,
  requestOutcome,
} from '../../cli/actionView';
import type { DeadLetterRecord, LedgerEntry } from '../../shared/ledger/ledger';

const NOW = new Date('2025-01-31T10:00:00.000Z');
const ANALYST_A = '0a0b0c0d-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const ANALYST_B = '0a0b0c0d-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const ISOLATE = `5cb838e931ff8c0f48af49a73f9d1c8751b827ec.isolateDevice.0c1d9e3bbaf6b2c7e8f9a0b1c2d3e4f5a6b7c8d9`;
const REVOKE = `2673ff330e187bb4693206c731f258a3dbe7d395.revokeSessions.6e7b768e-07e2-4810-8459-485f84f8f204`;

/** An isolation an analyst asked for, held by a guardrail, approved by another, run once: as GET /api/actions/{key} gives it. */
const approvedIsolation = actionOf({
  key: ISOLATE,
  kind: 'isolateDevice',
  target: { type: 'device', id: '0c1d9e3bbaf6b2c7e8f9a0b1c2d3e4f5a6b7c8d9', fqdn: 'wks-042.contoso.com', hostName: 'wks-042' },
  params: { isolationType: 'Selective' },
  mode: 'enforce',
  reason: 'beaconing to a known C2',
  source: { type: 'manual', subject: 'request:isolateDevice:0c1d…:1', requestedBy: ANALYST_A },
  state: 'succeeded',
  stateReason: 'isolated (Selective)',
  createdAt: '2025-01-31T09:55:00.000Z',
  updatedAt: '2025-01-31T09:58:00.000Z',
  history: [
    { at: '2025-01-31T09:55:00.000Z', state: 'pending-approval', by: ANALYST_A, note: 'needs-approval: a second analyst isolates (source manual)' },
    { at: '2025-01-31T09:57:00.000Z', state: 'planned', by: ANALYST_B, note: 'approved by Analyst B: confirmed with the owner' },
    { at: '2025-01-31T09:57:00.000Z', state: 'queued', by: ANALYST_B },
    { at: '2025-01-31T09:57:01.000Z', state: 'running', by: 'worker', note: 'delivery 1' },
    { at: '2025-01-31T09:58:00.000Z', state: 'succeeded', by: 'worker', note: 'isolated (Selective)' },
  ],
  attempts: [
    { attempt: 1, at: '2025-01-31T09:57:01.000Z', outcome: 'pending', detail: 'machine action posted', status: 201 },
    { attempt: 1, at: '2025-01-31T09:58:00.000Z', outcome: 'succeeded', detail: 'isolated (Selective)' },
  ],
  decidedBy: { verdict: 'approved', by: ANALYST_B, name: 'Analyst B', at: '2025-01-31T09:57:00.000Z', reason: 'confirmed with the owner' },
  etag: 'W/"1"',
}) as LedgerEntry;

describe('how actions read in a terminal', () => {
  it('ages in the largest whole unit', () => {
    expect(['2025-01-31T09:59:58Z', '2025-01-31T09:55:00Z', '2025-01-31T07:00:00Z', '2025-01-28T10:00:00Z', 'yesterday'].map((at) => age(at, NOW))).toEqual([
      '2s',
      '5m',
      '3h',
      '3d',
      '?',
    ]);
  });

  it('lists one line per action, key kind target state age reason, in aligned columns', () => {
    const revoke = {
      ...approvedIsolation,
      key: REVOKE,
      kind: 'revokeSessions',
      target: { type: 'user', upn: 'adele.vance@contoso.com' },
      reason: 'phished',
    } as LedgerEntry;
    expect(actionLines([approvedIsolation, revoke], NOW)).toEqual([
      `${ISOLATE}  isolateDevice   wks-042.contoso.com      succeeded  5m ago  beaconing to a known C2`,
      `${REVOKE}     revokeSessions  adele.vance@contoso.com  succeeded  5m ago  phished`,
    ]);
  });

  it('shows one action as a timeline: when, state, by whom (named where the entry names them), why; its attempts; what next', () => {
    expect(actionDetail(approvedIsolation, NOW)).toEqual([
      ISOLATE,
      '  what      isolateDevice (isolationType=Selective) on wks-042.contoso.com: isolate the device',
      '  state     succeeded: isolated (Selective)',
      '  reason    beaconing to a known C2',
      '  mode      enforce',
      `  source    manual, requested by ${ANALYST_A}`,
      '  created   2025-01-31T09:55:00.000Z (5m ago); updated 2025-01-31T09:58:00.000Z',
      `  decided   approved by Analyst B (${ANALYST_B}) at 2025-01-31T09:57:00.000Z: confirmed with the owner`,
      '',
      'History',
      `  2025-01-31T09:55:00.000Z  pending-approval  by ${ANALYST_A}  needs-approval: a second analyst isolates (source manual)`,
      `  2025-01-31T09:57:00.000Z  planned           by Analyst B (${ANALYST_B})  approved by Analyst B: confirmed with the owner`,
      `  2025-01-31T09:57:00.000Z  queued            by Analyst B (${ANALYST_B})`,
      '  2025-01-31T09:57:01.000Z  running           by worker  delivery 1',
      '  2025-01-31T09:58:00.000Z  succeeded         by worker  isolated (Selective)',
      '',
      'Attempts',
      '  #1  2025-01-31T09:57:01.000Z  pending  HTTP 201  machine action posted',
      '  #1  2025-01-31T09:58:00.000Z  succeeded  isolated (Selective)',
      '',
      'Next',
      `  responder actions rollback ${ISOLATE} --reason "<why>"`,
    ]);
  });

  it('links a rollback and what it undoes, and offers a held action to another analyst', () => {
    const held = {
      ...approvedIsolation,
      state: 'pending-approval',
      decidedBy: undefined,
      attempts: [],
      history: approvedIsolation.history.slice(0, 1),
    } as LedgerEntry;
    expect(actionDetail(held, NOW).slice(-3)).toEqual([
      'Next',
      `  responder actions approve ${ISOLATE} --reason "<why>" (by an analyst other than its requester)`,
      `  responder actions deny ${ISOLATE} --reason "<why>"`,
    ]);
    const undone = { ...approvedIsolation, state: 'rolled-back', rolledBackBy: 'c'.repeat(40) + '.unisolateDevice.x' } as LedgerEntry;
    expect(actionDetail(undone, NOW)).toContain(`  undone by ${'c'.repeat(40)}.unisolateDevice.x`);
    const rollback = { ...approvedIsolation, kind: 'unisolateDevice', params: {}, source: { ...approvedIsolation.source, rollbackOf: ISOLATE } } as LedgerEntry;
    expect(actionDetail(rollback, NOW)).toContain(`  undoes    ${ISOLATE}`);
  });

  it('says what a request, an approval or a denial came to', () => {
    const held = { ...approvedIsolation, state: 'pending-approval', stateReason: 'needs-approval: a second analyst isolates' } as LedgerEntry;
    expect(requestOutcome('requested', held, NOW)).toEqual([
      `requested: ${ISOLATE} (pending-approval: needs-approval: a second analyst isolates)`,
      `  ${ISOLATE}  isolateDevice  wks-042.contoso.com  pending-approval  5m ago  beaconing to a known C2`,
      `  another analyst approves it: responder actions approve ${ISOLATE} --reason "<why>"`,
    ]);
    const audited = { ...approvedIsolation, key: REVOKE, state: 'queued', mode: 'audit' } as LedgerEntry;
    expect(requestOutcome('rollback requested', audited, NOW)).toEqual([
      `rollback requested: ${REVOKE} (queued)`,
      '  audit mode: it is recorded and followed, but nothing is changed',
      expect.stringContaining('queued'),
      `  follow it: responder actions show ${REVOKE}`,
    ]);
    expect(decisionOutcome('approved', { ...approvedIsolation, state: 'queued' } as LedgerEntry, NOW)[0]).toBe('approved: queued');
    expect(decisionOutcome('denied', { ...approvedIsolation, state: 'denied' } as LedgerEntry, NOW)[0]).toBe('denied');
  });

  it('says what a replay came to, and offers one for what failed', () => {
    expect(replayOutcome({ ...approvedIsolation, state: 'queued' } as LedgerEntry)).toEqual([
      `${ISOLATE}  isolateDevice on wks-042.contoso.com: queued (sent again)`,
    ]);
    const failed = { ...approvedIsolation, state: 'failed', stateReason: 'Defender answered 400' } as LedgerEntry;
    expect(actionDetail(failed, NOW).slice(-2)).toEqual(['Next', `  responder replay ${ISOLATE} --reason "<why>"   send it again`]);
  });

  it('takes only what has the fields every entry has', () => {
    expect(actionOf(null)).toBeUndefined();
    expect(actionOf({ key: 'k', kind: 'disableUser', state: 'queued' })).toBeUndefined();
    expect(actionOf({ key: 'k', kind: 'disableUser', state: 'queued', target: {} })).toMatchObject({ history: [], attempts: [], source: {} });
  });
});

describe('what ended on the side, as responder deadletters prints it', () => {
  const record: DeadLetterRecord = {
    messageId: REVOKE,
    at: '2025-01-31T09:59:00.000Z',
    by: 'broker',
    reason: 'MaxDeliveryCountExceeded',
    description: 'delivered 10 times',
    body: '{}',
    actionKey: REVOKE,
  };
  const failed = { ...approvedIsolation, state: 'failed', stateReason: 'Defender answered 400' } as LedgerEntry;

  it('prints the records, then the actions, one line each, with who set each aside and how to replay', () => {
    const answer = deadLetterAnswerOf({
      deadLetters: [record, { ...record, messageId: 'garbage-1', by: 'worker', reason: 'SchemaInvalid', description: 'kind: invalid', actionKey: undefined }],
      failedActions: [failed],
      total: { deadLetters: 2, failedActions: 1 },
      truncated: false,
    });
    expect(deadLetterLines(answer!)).toEqual([
      '2 dead-lettered message(s)',
      `  2025-01-31T09:59:00.000Z  dead-lettered by Service Bus: MaxDeliveryCountExceeded delivered 10 times  message ${REVOKE}  names action ${REVOKE}`,
      '  2025-01-31T09:59:00.000Z  refused by the worker: SchemaInvalid kind: invalid  message garbage-1',
      '1 action(s) failed or dead-lettered (replay one with: responder replay <action key> --reason "<why>")',
      `  ${ISOLATE}  isolateDevice on wks-042.contoso.com: failed: Defender answered 400`,
    ]);
  });

  it('says when the engine cut a list, and how to see more', () => {
    const answer = deadLetterAnswerOf({ deadLetters: [record], failedActions: [], total: { deadLetters: 73, failedActions: 0 }, truncated: true });
    const lines = deadLetterLines(answer!);
    expect(lines[0]).toBe('73 dead-lettered message(s), the newest 1 shown');
    expect(lines.at(-1)).toMatch(/^more: --limit <n> shows up to 200 of each; responder actions list --state failed --all/);
  });

  it("keeps another machine's text to one line each, and takes only an answer with both lists", () => {
    const forged = { ...record, description: 'x\n  2025-01-31  refused by the worker: forged\u001b[2J', by: 'someone\nelse' };
    const lines = deadLetterLines(deadLetterAnswerOf({ deadLetters: [forged], failedActions: [] })!);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/^ {2}\S+ {2}someone else: MaxDeliveryCountExceeded x {3}2025-01-31 {2}refused by the worker: forged \[2J {2}message /);
    expect(deadLetterAnswerOf({ deadLetters: [] })).toBeUndefined();
    expect(deadLetterAnswerOf({ deadLetters: [null], failedActions: [] })).toBeUndefined();
    expect(deadLetterAnswerOf({ deadLetters: [], failedActions: [{ key: 'k' }] })).toBeUndefined();
    // Totals below what was shown are not believed.
    expect(deadLetterAnswerOf({ deadLetters: [record], failedActions: [], total: { deadLetters: 0 } })?.total).toEqual({ deadLetters: 1, failedActions: 0 });
  });
});
