import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { ActionKind } from '../../shared/actions/catalogue';
import { executeCommand } from '../../shared/actions/execute';
import type { ActionExecutor, ExecutionContext } from '../../shared/actions/executor';
import { rollbackRefusal } from '../../shared/actions/rollback';
import type { ActionTarget } from '../../shared/actions/target';
import type { LedgerEntry } from '../../shared/ledger/ledger';
import { compilePolicy } from '../../shared/policy/decide';
import { parsePolicy } from '../../shared/policy/load';
import { DEMO, DEMO_DEVICES, SECURITY_ADMINISTRATOR } from '../../sandbox/tenant';
import { command, succeededEntry } from '../fixtures/commands';

/**
 * What a rollback may undo, judged where it runs: only the engine's own succeeded action of the kind it undoes, on the
 * same principal, by what that action's snapshot recorded. Whatever put the rollback in the ledger.
 */
const adele: ActionTarget = { type: 'user', id: DEMO.adele, upn: 'adele.vance@contoso.com' };
const megan: ActionTarget = { type: 'user', id: DEMO.megan, upn: 'megan.bowen@contoso.com' };
const wks: ActionTarget = { type: 'device', id: DEMO_DEVICES.wks042, fqdn: 'wks-042.contoso.com' };
const websrv: ActionTarget = { type: 'device', id: DEMO_DEVICES.websrv1 };

const SNAPSHOTS: Partial<Record<ActionKind, unknown>> = {
  disableUser: { wasEnabled: true },
  isolateDevice: { machineId: DEMO_DEVICES.wks042, isolationActionId: 'action-1' },
  requirePimReapproval: {
    principalId: DEMO.megan,
    removed: [{ roleDefinitionId: SECURITY_ADMINISTRATOR, directoryScopeId: '/', assignmentType: 'Assigned' }],
    policyGaps: [],
  },
};

/** An action the engine carried out, as the ledger holds it once it succeeded. */
const done = (kind: ActionKind, target: ActionTarget): LedgerEntry => succeededEntry(command(kind, target, {}, 9), SNAPSHOTS[kind]);

/** The rollback of `original` as the engine records it: of `kind`, on `target`, naming it. */
const undoing = (kind: ActionKind, target: ActionTarget, original: LedgerEntry | undefined, rollbackOf = original?.key) =>
  command(kind, target, { source: { type: 'manual', subject: 'request', ...(rollbackOf && { rollbackOf }) } }, 10);

describe('rollbackRefusal', () => {
  it.each([
    ['enableUser', 'disableUser', adele, adele],
    ['unisolateDevice', 'isolateDevice', wks, wks],
    ['restorePimAssignments', 'requirePimReapproval', megan, megan],
    // The rollback's target bound to the directory since: the same principal by any strong identifier.
    ['enableUser', 'disableUser', { type: 'user', upn: 'adele.vance@contoso.com' }, adele],
    ['unisolateDevice', 'isolateDevice', { type: 'device', fqdn: 'wks-042.contoso.com' }, wks],
  ] as Array<[ActionKind, ActionKind, ActionTarget, ActionTarget]>)('lets %s undo the %s it names, on the same principal', (kind, undone, original, target) => {
    const entry = done(undone, original);
    expect(rollbackRefusal(undoing(kind, target, entry), entry)).toBeUndefined();
  });

  it('asks nothing of an action that undoes nothing and names nothing to undo', () => {
    expect(rollbackRefusal(command('disableUser', adele), undefined)).toBeUndefined();
  });

  const disabled = done('disableUser', adele);
  const isolated = done('isolateDevice', wks);
  const removed = done('requirePimReapproval', megan);
  it.each([
    ['a rollback that names nothing', undoing('enableUser', adele, undefined), undefined, /^enableUser is a rollback and names no action to undo$/],
    ['an action that undoes nothing, naming one', undoing('disableUser', adele, disabled), disabled, /^disableUser undoes nothing, yet names .* to undo$/],
    [
      'an original the ledger does not hold',
      undoing('enableUser', adele, undefined, disabled.key),
      undefined,
      /^the action it undoes, .*, is not in the ledger$/,
    ],
    [
      'an original of another kind',
      undoing('unisolateDevice', wks, disabled),
      disabled,
      /^action .* is a disableUser, undone by enableUser, not unisolateDevice$/,
    ],
    [
      'an original that cannot be undone',
      undoing('enableUser', adele, done('revokeSessions', adele)),
      done('revokeSessions', adele),
      /^revokeSessions cannot be undone/,
    ],
    [
      'an original still queued',
      undoing('enableUser', adele, disabled),
      { ...disabled, state: 'queued' },
      /is queued: only a succeeded action can be rolled back$/,
    ],
    ['an original rolled back already', undoing('enableUser', adele, disabled), { ...disabled, state: 'rolled-back' }, /was already rolled back$/],
    ['an original rehearsed in audit mode', undoing('enableUser', adele, disabled), { ...disabled, mode: 'audit' }, /ran in audit mode: nothing was changed$/],
    ['an account someone else had disabled', undoing('enableUser', adele, disabled), { ...disabled, rollback: { wasEnabled: false } }, /already disabled/],
    [
      'an original on another user',
      undoing('enableUser', megan, disabled),
      disabled,
      /^action .* acted on adele\.vance@contoso\.com, not megan\.bowen@contoso\.com$/,
    ],
    ['an original on another device', undoing('unisolateDevice', websrv, isolated), isolated, /acted on wks-042\.contoso\.com, not /],
    [
      'a PIM snapshot of another principal than the action acted on',
      undoing('restorePimAssignments', megan, removed),
      { ...removed, rollback: { ...(SNAPSHOTS.requirePimReapproval as object), principalId: DEMO.jsmith } },
      new RegExp(`^its snapshot names roles removed from ${DEMO.jsmith}, not from ${DEMO.megan}, whom action .* acted on$`),
    ],
    [
      'a PIM snapshot whose roles cannot be read as removed roles',
      undoing('restorePimAssignments', megan, removed),
      { ...removed, rollback: { principalId: DEMO.megan, removed: [{ roleDefinitionId: 62 }], policyGaps: [] } },
      /^its snapshot does not read as roles requirePimReapproval removed$/,
    ],
  ] as Array<[string, ReturnType<typeof undoing>, LedgerEntry | undefined, RegExp]>)('refuses %s', (_what, rollback, original, why) => {
    expect(rollbackRefusal(rollback, original)).toMatch(why);
  });
});

describe('executeCommand, for a rollback', () => {
  const policy = compilePolicy(parsePolicy('version: 1\nmode: enforce\nrules: []\n', 'test policy'));
  const disabled = done('disableUser', adele);
  /** Carry `rollback` out with the ledger holding `original`: the outcome, and whether any API could have been reached. */
  async function execute(rollback: ReturnType<typeof undoing>, original: LedgerEntry) {
    let reached = false;
    const executor: ActionExecutor = {
      kind: 'enableUser',
      apiCost: () => ({}),
      execute: async () => ({ outcome: 'succeeded', alreadyDone: false, detail: 'enabled' }),
    };
    const outcome = await executeCommand(
      {
        executors: { enableUser: executor },
        executionContext: async () => ((reached = true), {} as ExecutionContext),
        policy,
        modeOverride: 'enforce',
        entryOf: async (key) => (key === original.key ? original : undefined),
        heldByAnother: async () => undefined,
      },
      rollback,
      pino({ level: 'silent' }),
    );
    return { outcome, reached };
  }

  it('refuses, before any API is reached, a rollback the action it names does not allow', async () => {
    const { outcome, reached } = await execute(undoing('enableUser', megan, disabled), disabled);
    expect(outcome).toEqual({
      outcome: 'failed',
      class: 'permanent',
      detail: expect.stringMatching(/^refused: action .* acted on adele\.vance@contoso\.com, not megan/),
    });
    expect(reached).toBe(false);
  });

  it('refuses one naming an action the ledger does not hold', async () => {
    const { outcome, reached } = await execute(undoing('enableUser', adele, undefined, done('disableUser', megan).key), disabled);
    expect(outcome).toMatchObject({ outcome: 'failed', class: 'permanent', detail: expect.stringMatching(/is not in the ledger$/) });
    expect(reached).toBe(false);
  });
});
