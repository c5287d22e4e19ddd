import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { approveAction, listActions, requestAction } from '../../functions/actions';
import type { LedgerEntry } from '../../shared/ledger/ledger';
import { DEMO, DEMO_DEVICES, SAMPLE_INCIDENT_ID } from '../../sandbox/tenant';
import { ANALYST_A, ANALYST_B, analystBearer, requestAndRun, requestRollback } from '../support/analysts';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';

/**
 * Attacks on the analysts' API: each test is a way an approval, a request or a rollback could act on the wrong thing,
 * twice, without its approval, or get stuck, and states what must happen instead.
 */
const POLICY = (extra = '') => `version: 1
mode: enforce
rules: []
${extra}`;

let engine: EngineUnderTest;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());
beforeEach(() => engine.configure({ RESPONDER_POLICY: POLICY() }));

const as = (roles: string[], oid = ANALYST_A, name = 'Analyst A') => analystBearer(engine, roles, oid, name);
const actor = () => as(['Responder.Act', 'Responder.Read']);

const ask = async (body: Record<string, unknown>, headers?: Record<string, string>) =>
  call(requestAction, 'actions', { body: { reason: 'contain', ...body }, headers: headers ?? (await actor()) });

const done = async (kind: string, target: string): Promise<LedgerEntry> => requestAndRun(engine, { kind, target }, await actor());
const rollback = async (key: string, reason = 'false positive') => requestRollback(key, reason, await actor());

describe('attack: rollback', () => {
  it('SAFETY: a release that Defender reports Failed is not recorded as succeeded, and the isolation is not marked rolled-back', async () => {
    const queue = engine.startWorker();
    const isolated = await done('isolateDevice', 'wks-042.contoso.com');
    expect(isolated.state).toBe('succeeded');
    const tenant = engine.sandbox.tenant;
    tenant.actionCompletionMs = 3_600_000; // the release stays Pending until we say
    const res = await rollback(isolated.key);
    expect(res.status).toBe(202);
    await queue.idle(); // the unisolate is posted, a follow-up scheduled
    const release = tenant.machineActions.find((a) => a.type === 'Unisolate');
    expect(release?.status).toBe('Pending');
    release!.endsAs = 'Failed';
    tenant.actionCompletionMs = 0;
    await engine.drain();
    queue.stop();

    // The failed release is an attempt that failed (retried: the next attempt posts anew), never a success; and the
    // ledger says rolled-back exactly when Defender says the device is released.
    const undo = await engine.ledger.get(res.json.action.key);
    expect(
      undo?.attempts.some((a) => a.outcome === 'transient' && /Failed/.test(a.detail)),
      JSON.stringify(undo?.attempts),
    ).toBe(true);
    const released = tenant.machines.get(DEMO_DEVICES.wks042)?.isolated === false;
    expect(undo?.state === 'succeeded').toBe(released);
    expect((await engine.ledger.get(isolated.key))?.state === 'rolled-back').toBe(released);
  });

  it('SAFETY: a rollback never releases an isolation someone else made after the engine’s (released, then re-isolated by a human)', async () => {
    const queue = engine.startWorker();
    const isolated = await done('isolateDevice', 'wks-042.contoso.com');
    expect(isolated).toMatchObject({ state: 'succeeded', rollback: { isolationActionId: expect.any(String) } });
    const tenant = engine.sandbox.tenant;
    // In the Defender portal: an analyst releases the device, then (new evidence) isolates it again, by hand.
    const engineIsolation = Date.parse(tenant.machineActions.find((a) => a.type === 'Isolate')!.creationDateTimeUtc);
    const at = (ms: number) => new Date(engineIsolation + ms).toISOString();
    const human = { machineId: DEMO_DEVICES.wks042, computerDnsName: 'wks-042.contoso.com', requestor: 'tier2@contoso.com', endsAs: 'Succeeded' as const };
    tenant.machineActions.push(
      {
        ...human,
        id: 'human-release',
        type: 'Unisolate',
        status: 'Succeeded',
        requestorComment: 'false alarm',
        creationDateTimeUtc: at(1),
        lastUpdateDateTimeUtc: at(1),
      },
      {
        ...human,
        id: 'human-isolate',
        type: 'Isolate',
        status: 'Succeeded',
        requestorComment: 'IR-2231: ransomware note found',
        isolationType: 'Full',
        creationDateTimeUtc: at(2),
        lastUpdateDateTimeUtc: at(2),
      },
    );
    const res = await rollback(isolated.key);
    await engine.drain();
    queue.stop();
    // The engine's isolation is no longer what holds the device: releasing it now would undo the human's isolation.
    expect(tenant.count('POST', /\/unisolate$/)).toBe(0);
    expect(tenant.machines.get(DEMO_DEVICES.wks042)?.isolated).toBe(true);
    expect(res.status === 409 || (await engine.ledger.get(res.json.action?.key))?.state !== 'succeeded').toBe(true);
  });

  it('SAFETY: rolling back one disable does not silently re-enable an account another, later containment still holds disabled', async () => {
    const queue = engine.startWorker();
    const first = await done('disableUser', 'adele.vance@contoso.com');
    expect(first).toMatchObject({ state: 'succeeded', rollback: { wasEnabled: true } });
    // A second, separate request (another incident, another analyst) to disable her: already disabled, it succeeds.
    const second = await done('disableUser', DEMO.adele);
    expect(second).toMatchObject({ state: 'succeeded', rollback: { wasEnabled: false } });
    const res = await rollback(first.key, 'incident 1 was a false positive');
    await engine.drain();
    queue.stop();
    // The ledger still says `second` holds Adele disabled (succeeded, cannot be rolled back: NothingToUndo) ...
    expect((await engine.ledger.get(second.key))?.state).toBe('succeeded');
    // ... so the first rollback should have been refused or held, not carried out.
    const enabled = engine.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled;
    expect(enabled, `rollback answered ${res.status}; Adele enabled=${enabled} while ${second.key} still stands`).toBe(false);
  });

  it('DESIGN: a device listed as protected since the engine isolated it is released by hand: the engine never acts on it, not even to undo', async () => {
    engine.startWorker();
    const isolated = await done('isolateDevice', 'wks-042.contoso.com');
    expect(isolated.state).toBe('succeeded');
    // The box turns out to be critical: the policy now protects it. Leaving it isolated is the harm now.
    engine.configure({ RESPONDER_POLICY: POLICY('protected: { devices: [wks-042.contoso.com] }') }, { ledger: engine.ledger, queue: engine.queue });
    engine.sandbox.tenant.machines.get(DEMO_DEVICES.wks042)!.isolated = true;
    engine.sandbox.tenant.machineActions.push({
      id: 'engine-isolation',
      type: 'Isolate',
      status: 'Succeeded',
      machineId: DEMO_DEVICES.wks042,
      computerDnsName: 'wks-042.contoso.com',
      requestor: 'sandbox-managed-identity',
      requestorComment: `Sentinel Responder ${isolated.key}#0: contain`,
      isolationType: 'Full',
      creationDateTimeUtc: new Date().toISOString(),
      lastUpdateDateTimeUtc: new Date().toISOString(),
      endsAs: 'Succeeded',
    });
    const res = await rollback(isolated.key);
    // The protected list is the customer's hard boundary: refused, recorded blocked, not linked, and the answer says how.
    expect([res.status, res.json.error?.code]).toEqual([403, 'Protected']);
    expect(res.json.error.message).toMatch(/by hand/);
    expect(res.json.action.state).toBe('blocked');
    expect((await engine.ledger.get(isolated.key))?.rolledBackBy).toBeUndefined();
    expect(engine.sandbox.tenant.count('POST', /\/unisolate$/)).toBe(0);
  });

  it('CLARITY: a rollback the policy refused (blocked) is not linked on the original as its rollback', async () => {
    const queue = engine.startWorker();
    const disabled = await done('disableUser', 'adele.vance@contoso.com');
    queue.stop();
    engine.configure(
      { RESPONDER_POLICY: POLICY('guardrails: { caps: [{ action: enableUser, max: 0, per: PT1H }] }') },
      { ledger: engine.ledger, queue: engine.queue },
    );
    const res = await rollback(disabled.key);
    expect([res.status, res.json.error.code]).toEqual([429, 'CircuitOpen']);
    const original = await engine.ledger.get(disabled.key);
    expect(original?.history.at(-1)?.note).not.toMatch(/^rollback .* requested by/);
    expect(original?.rolledBackBy, 'rolledBackBy names a blocked action').toBeUndefined();
  });
});

describe('attack: requests and approvals', () => {
  it('four eyes through the real route: the requester cannot approve her own held request (control)', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY("guardrails: { approvals: [{ action: '*', when: { sources: [manual] }, reason: manual needs two } ] }") });
    const res = await ask({ kind: 'disableUser', target: 'adele.vance@contoso.com' }, await as(['Responder.Act', 'Responder.Approve']));
    expect(res.json.action?.state, JSON.stringify(res.json)).toBe('pending-approval');
    const key = res.json.action.key;
    const own = await call(approveAction, `actions/${key}/approve`, { params: { key }, headers: await as(['Responder.Approve']), body: { reason: 'me' } });
    expect([own.status, own.json.error.code]).toEqual([403, 'FourEyes']);
    const upper = await call(approveAction, `actions/${key}/approve`, {
      params: { key },
      headers: await as(['Responder.Approve'], ANALYST_A.toUpperCase()),
      body: { reason: 'me, shouting' },
    });
    expect(upper.status).toBe(403);
  });

  it('CORRECTNESS: a held request past its approvalTtl does not block a new request with 409 for an action that can never run', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY("guardrails: { approvalTtl: PT1S, approvals: [{ action: '*', reason: all held }] }") });
    const first = await ask({ kind: 'disableUser', target: 'adele.vance@contoso.com' });
    expect(first.json.action.state).toBe('pending-approval');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const again = await ask({ kind: 'disableUser', target: 'adele.vance@contoso.com', reason: 'still needed' });
    // 409 AlreadyActive naming an action that an approval would only expire.
    expect([again.status, again.json.error?.code, again.json.action?.state]).toEqual([202, undefined, 'pending-approval']);
  });

  it('CORRECTNESS: GET /api/actions?incident= lists the analysts’ requests and rollbacks on that incident', async () => {
    const queue = engine.startWorker();
    const res = await ask({ kind: 'disableUser', target: 'adele.vance@contoso.com', incident: SAMPLE_INCIDENT_ID });
    expect(res.status).toBe(202);
    expect(res.json.action.source.incidentArmId).toBe(SAMPLE_INCIDENT_ID);
    await engine.drain();
    queue.stop();
    const list = await call(listActions, 'actions', { method: 'GET', headers: await as(['Responder.Read']), query: { incident: SAMPLE_INCIDENT_ID } });
    expect(list.json.actions.map((a: LedgerEntry) => a.key)).toContain(res.json.action.key);
  });

  it('CLARITY: a forged or stale paging cursor is refused, not silently read as "from the start"', async () => {
    await ask({ kind: 'disableUser', target: 'adele.vance@contoso.com' });
    await ask({ kind: 'revokeSessions', target: 'adele.vance@contoso.com' });
    const list = await call(listActions, 'actions', { method: 'GET', headers: await as(['Responder.Read']), query: { limit: '1', after: 'forged' } });
    expect(list.status).toBe(400);
  });

  it('SAFETY/LIVENESS: an approved action whose send failed is not lost when someone asks for it again (409 path resends without its replay number)', async () => {
    const adele = engine.sandbox.tenant.users.get(DEMO.adele)!;
    // A requests; the worker finds the directory disagrees with the request (her UPN changed meanwhile) and holds it.
    const res = await ask({ kind: 'disableUser', target: 'adele.vance@contoso.com' });
    expect(res.json.action.state).toBe('queued');
    const key = res.json.action.key;
    adele.userPrincipalName = 'adele.v@contoso.com';
    const queue = engine.startWorker();
    await engine.drain();
    queue.stop();
    expect((await engine.ledger.get(key))?.state).toBe('pending-approval');
    adele.userPrincipalName = 'adele.vance@contoso.com'; // a human sorted the directory out
    // B approves; the queue is briefly unavailable: 503, the entry waits `planned`, approved (replays: 1).
    const send = queue.send.bind(queue);
    queue.send = async () => {
      throw new Error('ServiceBusError: ServiceTimeout');
    };
    const approval = await call(approveAction, `actions/${key}/approve`, {
      params: { key },
      headers: await as(['Responder.Approve'], ANALYST_B, 'B'),
      body: { reason: 'checked' },
    });
    queue.send = send;
    expect(approval.status).toBe(503);
    expect(await engine.ledger.get(key)).toMatchObject({ state: 'planned', replays: 1, decidedBy: { verdict: 'approved' } });
    // A asks again (she does not know it was approved): 409 with the action, which the engine "sends now".
    const again = await ask({ kind: 'disableUser', target: 'adele.vance@contoso.com', reason: 'still needed' });
    expect(again.status).toBe(409);
    engine.startWorker();
    await engine.drain();
    queue.stop();
    const entry = await engine.ledger.get(key);
    // The resend reused the first run's MessageId: the broker dropped it as a duplicate, yet the entry was marked queued.
    expect(entry?.state, `stuck ${entry?.state}; history: ${entry?.history.map((h) => h.state).join(' > ')}`).toBe('succeeded');
    expect(adele.accountEnabled).toBe(false);
  });

  it('control: approval lifts a guardrail, never protection added after the hold', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY("guardrails: { approvals: [{ action: '*', reason: all held }] }") });
    const res = await ask({ kind: 'isolateDevice', target: 'wks-042.contoso.com' });
    expect(res.json.action.state).toBe('pending-approval');
    const key = res.json.action.key;
    engine.configure(
      { RESPONDER_POLICY: POLICY("protected: { devices: [WKS-042] }\nguardrails: { approvals: [{ action: '*', reason: all held }] }") },
      { ledger: engine.ledger, queue: engine.queue },
    );
    const queue = engine.startWorker();
    const ok = await call(approveAction, `actions/${key}/approve`, {
      params: { key },
      headers: await as(['Responder.Approve'], ANALYST_B, 'B'),
      body: { reason: 'go' },
    });
    expect(ok.status).toBe(202);
    await engine.drain();
    queue.stop();
    expect(engine.sandbox.tenant.count('POST', /\/isolate$/)).toBe(0);
    expect((await engine.ledger.get(key))?.state).toBe('blocked');
  });
});
