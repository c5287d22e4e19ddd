import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { requestAction, showAction } from '../../functions/actions';
import type { LedgerEntry } from '../../shared/ledger/ledger';
import { DEMO, DEMO_DEVICES, SAMPLE_INCIDENT_ID, SECURITY_ADMINISTRATOR } from '../../sandbox/tenant';
import { commandFor } from '../../shared/actions/command';
import { commentIdFor } from '../../shared/clients/sentinel';
import { command, recordedEntry } from '../fixtures/commands';
import { ANALYST_A, analystBearer, requestAndRun, requestRollback } from '../support/analysts';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';

/** Rollbacks: new actions that undo what the engine did, under the same policy, linked both ways. */
const POLICY = (approvals = '[]') => `version: 1
mode: enforce
guardrails: { approvals: ${approvals} }
rules: []
`;

let engine: EngineUnderTest;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());
beforeEach(() => engine.configure({ RESPONDER_POLICY: POLICY() }));

const actor = () => analystBearer(engine, ['Responder.Act', 'Responder.Read']);

const done = async (kind: string, target: string): Promise<LedgerEntry> => requestAndRun(engine, { kind, target }, await actor());
const rollback = async (key: string, reason = 'false positive: the user confirmed the sign-in') => requestRollback(key, reason, await actor());

describe('POST /api/actions/{key}/rollback', () => {
  it('re-enables an account the engine disabled, and links the two actions both ways', async () => {
    const queue = engine.startWorker();
    const disabled = await done('disableUser', 'adele.vance@contoso.com');
    expect(disabled.state).toBe('succeeded');
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled).toBe(false);

    const res = await rollback(disabled.key);
    expect(res.status).toBe(202);
    expect(res.json.action).toMatchObject({ kind: 'enableUser', source: { type: 'manual', requestedBy: ANALYST_A, rollbackOf: disabled.key } });
    await engine.drain();
    queue.stop();

    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled).toBe(true);
    const enable = await engine.ledger.get(res.json.action.key);
    expect(enable?.state).toBe('succeeded');
    const original = await call(showAction, `actions/${disabled.key}`, { method: 'GET', params: { key: disabled.key }, headers: await actor() });
    expect(original.json.action).toMatchObject({ state: 'rolled-back', rolledBackBy: enable?.key });
    expect(original.json.action.history.map((h: { note?: string }) => h.note)).toEqual(
      expect.arrayContaining([
        `rollback ${enable?.key} requested by Analyst A: false positive: the user confirmed the sign-in`,
        `rolled back by ${enable?.key}`,
      ]),
    );
    // Undone once is undone: a second rollback is refused.
    expect((await rollback(disabled.key)).json.error.code).toBe('AlreadyRolledBack');
  });

  it('releases a device the engine isolated', async () => {
    const queue = engine.startWorker();
    const isolated = await done('isolateDevice', 'wks-042.contoso.com');
    expect(isolated.state).toBe('succeeded');
    const res = await rollback(isolated.key);
    expect(res.status).toBe(202);
    await engine.drain();
    queue.stop();
    expect((await engine.ledger.get(res.json.action.key))?.state).toBe('succeeded');
    expect(engine.sandbox.tenant.machines.get(DEMO_DEVICES.wks042)?.isolated).toBe(false);
    expect(engine.sandbox.tenant.count('POST', /\/unisolate$/)).toBe(1);
    expect((await engine.ledger.get(isolated.key))?.state).toBe('rolled-back');
  });

  it('gives back a permanent role the engine removed', async () => {
    engine.sandbox.tenant.assignRole(DEMO.jsmith, SECURITY_ADMINISTRATOR, 'Assigned');
    const queue = engine.startWorker();
    const removed = await done('requirePimReapproval', 'jsmith@contoso.com');
    expect(removed.state).toBe('succeeded');
    const active = () => engine.sandbox.tenant.roleAssignments.filter((a) => a.principalId === DEMO.jsmith);
    expect(active()).toEqual([]);
    const res = await rollback(removed.key);
    expect(res.status).toBe(202);
    await engine.drain();
    queue.stop();
    expect((await engine.ledger.get(res.json.action.key))?.state).toBe('succeeded');
    expect(active()).toEqual([expect.objectContaining({ roleDefinitionId: SECURITY_ADMINISTRATOR })]);
  });

  it('refuses at execution a restore the ledger holds for a removal already rolled back: no role is given twice (attack)', async () => {
    engine.sandbox.tenant.assignRole(DEMO.jsmith, SECURITY_ADMINISTRATOR, 'Assigned');
    const queue = engine.startWorker();
    const removed = await done('requirePimReapproval', 'jsmith@contoso.com');
    const restore = await rollback(removed.key);
    await engine.drain();
    expect((await engine.ledger.get(removed.key))?.state).toBe('rolled-back');
    // An administrator removes the role again; then a second restore naming the same removal reaches the ledger without
    // the engine's rollback route, which would have refused it (AlreadyRolledBack), and its command the queue.
    const tenant = engine.sandbox.tenant;
    tenant.roleAssignments.splice(
      tenant.roleAssignments.findIndex((a) => a.principalId === DEMO.jsmith),
      1,
    );
    const again = command(
      'restorePimAssignments',
      { type: 'user', id: DEMO.jsmith, upn: 'jsmith@contoso.com' },
      {
        source: { type: 'manual', subject: `rollback:${removed.key}:2`, requestedBy: ANALYST_A, rollbackOf: removed.key },
      },
    );
    const { entry } = await engine.ledger.create(recordedEntry(again));
    await engine.queue.send([commandFor(entry, new Date().toISOString())]);
    await engine.drain();
    queue.stop();

    expect(await engine.ledger.get(again.idempotencyKey)).toMatchObject({
      state: 'failed',
      stateReason: expect.stringMatching(new RegExp(`^refused: action ${removed.key} was already rolled back$`)),
    });
    expect(tenant.roleAssignments.filter((a) => a.principalId === DEMO.jsmith)).toEqual([]);
    expect((await engine.ledger.get(restore.json.action.key))?.state).toBe('succeeded');
  });

  it('SAFETY: refuses at execution a rollback whose retry comes after another containment began on its target', async () => {
    const queue = engine.startWorker();
    const first = await done('disableUser', 'adele.vance@contoso.com');
    // Graph is down for the rollback's first attempt: it is retried later.
    engine.sandbox.faults.add({ method: 'PATCH', count: 1, status: 503, body: { error: { code: 'ServiceUnavailable', message: 'try later' } } });
    const undo = await rollback(first.key);
    await queue.idle();
    expect(await engine.ledger.get(undo.json.action.key)).toMatchObject({ state: 'queued', attempts: [{ outcome: 'transient' }] });
    // Meanwhile another incident disables her (already disabled: nothing of its own to undo), and that containment
    // stands; then the rollback's retry comes.
    const second = await done('disableUser', DEMO.adele);
    queue.stop();
    expect(second.state).toBe('succeeded');

    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled).toBe(false);
    expect(await engine.ledger.get(undo.json.action.key)).toMatchObject({
      state: 'failed',
      stateReason: expect.stringMatching(new RegExp(`^refused: another disableUser still stands on .*${second.key}`)),
    });
    expect((await engine.ledger.get(first.key))?.state).toBe('succeeded');
  });

  it('refuses to re-enable an account someone else had disabled: nothing is enabled', async () => {
    engine.sandbox.tenant.users.get(DEMO.adele)!.accountEnabled = false;
    const queue = engine.startWorker();
    const disabled = await done('disableUser', 'adele.vance@contoso.com');
    queue.stop();
    expect(disabled).toMatchObject({ state: 'succeeded', rollback: { wasEnabled: false } });
    const res = await rollback(disabled.key);
    expect([res.status, res.json.error.code]).toEqual([409, 'NothingToUndo']);
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled).toBe(false);
    expect(engine.ledger.all().filter((e) => e.kind === 'enableUser')).toEqual([]);
  });

  it('says what cannot be undone: revoked sessions, a confirmation of compromise', async () => {
    const queue = engine.startWorker();
    const revoked = await done('revokeSessions', 'adele.vance@contoso.com');
    queue.stop();
    const res = await rollback(revoked.key);
    expect([res.status, res.json.error.code]).toEqual([409, 'Irreversible']);
    expect(res.json.error.message).toMatch(/revokeSessions cannot be undone/);
  });

  it('holds a rollback for approval where the policy says so, and refuses a second one meanwhile', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY('[{ action: enableUser, reason: re-enabling needs a second analyst }]') });
    const queue = engine.startWorker();
    const disabled = await done('disableUser', 'adele.vance@contoso.com');
    queue.stop();
    const res = await rollback(disabled.key);
    expect(res.status).toBe(202);
    expect(res.json.action).toMatchObject({ kind: 'enableUser', state: 'pending-approval' });
    const again = await rollback(disabled.key, 'again');
    expect([again.status, again.json.error.code, again.json.action.key]).toEqual([409, 'AlreadyActive', res.json.action.key]);
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled).toBe(false);
  });

  it('answers 404 for an action it does not have, and 409 for one that has not succeeded', async () => {
    const missing = `${'a'.repeat(40)}.disableUser.h${'b'.repeat(32)}`;
    expect((await rollback(missing)).status).toBe(404);
    const res = await call(requestAction, 'actions', { body: { kind: 'disableUser', target: 'adele.vance@contoso.com', reason: 'x' }, headers: await actor() });
    const queued = await rollback(res.json.action.key);
    expect([queued.status, queued.json.error.code]).toEqual([409, 'NotSucceeded']);
  });

  it("rewrites the original's comment on its incident: rolled back", async () => {
    const queue = engine.startWorker();
    const asked = await call(requestAction, 'actions', {
      body: { kind: 'disableUser', target: 'adele.vance@contoso.com', reason: 'contain', incident: SAMPLE_INCIDENT_ID },
      headers: await actor(),
    });
    expect(asked.status).toBe(202);
    await engine.drain();
    const key = asked.json.action.key as string;
    expect((await rollback(key)).status).toBe(202);
    await engine.drain();
    queue.stop();
    const incident = engine.sandbox.tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())!;
    expect(incident.comments.get(commentIdFor(key))?.properties.message).toMatch(/^Sentinel Responder — disableUser on adele\.vance@contoso\.com: ROLLED BACK/);
    expect(incident.properties.labels.map((l) => l.labelName)).toContain('responder-rolled-back');
  });
});
