import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { approveAction, requestAction } from '../../functions/actions';
import type { EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import { DEMO, DEMO_DEVICES, SAMPLE_INCIDENT_ID } from '../../sandbox/tenant';
import { ANALYST_A, ANALYST_B, analystBearer } from '../support/analysts';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';

/** Analysts asking for actions: the same policy as automation, with `source: manual`. */
const POLICY = `version: 1
mode: enforce
protected: { users: [breakglass1@contoso.com], deviceTags: [critical] }
guardrails:
  approvals: [{ action: isolateDevice, when: { sources: [manual], deviceTags: [server] }, reason: servers need a second analyst }]
  caps: [{ action: disableUser, max: 1, per: PT1H }]
rules: []
`;

const INCIDENT_ARM_ID = SAMPLE_INCIDENT_ID;

let engine: EngineUnderTest;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());
beforeEach(() => engine.configure({ RESPONDER_POLICY: POLICY }));

const as = (roles: string[], oid = ANALYST_A, name = 'Analyst A') => analystBearer(engine, roles, oid, name);
const ask = async (body: Record<string, unknown>, oid = ANALYST_A) => call(requestAction, 'actions', { body, headers: await as(['Responder.Act'], oid) });

describe('POST /api/actions: an analyst asks for an action', () => {
  it('queues it on the directory identity, runs it once, and records who asked and why', async () => {
    const queue = engine.startWorker();
    const res = await ask({ kind: 'revokeSessions', target: 'Adele.Vance@contoso.com', reason: 'user reported a phishing link' });
    expect(res.status).toBe(202);
    // The worker may have taken it already: the route answers once the queue has it.
    expect(['queued', 'running', 'succeeded']).toContain(res.json.action.state);
    expect(res.json.action).toMatchObject({
      kind: 'revokeSessions',
      target: { type: 'user', id: DEMO.adele, upn: 'adele.vance@contoso.com' },
      reason: 'user reported a phishing link',
      source: { type: 'manual', requestedBy: ANALYST_A },
    });
    expect(res.json.action.source).not.toHaveProperty('ruleId');
    await queue.idle();
    queue.stop();
    expect((await engine.ledger.get(res.json.action.key))?.state).toBe('succeeded');
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.sessionRevocations).toBe(1);
  });

  it('refuses a protected principal with 403 Protected, and records the refusal', async () => {
    const res = await ask({ kind: 'disableUser', target: DEMO.breakglass, reason: 'looks odd' });
    expect(res.status).toBe(403);
    expect(res.json.error.code).toBe('Protected');
    expect(res.json.action).toMatchObject({ state: 'blocked' });
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(0);
    const device = await ask({ kind: 'isolateDevice', target: 'dc01.contoso.com', reason: 'beaconing' });
    expect([device.status, device.json.error.code]).toEqual([403, 'Protected']);
  });

  it('counts caps across requests: past the cap, 429 CircuitOpen, recorded blocked', async () => {
    expect((await ask({ kind: 'disableUser', target: 'adele.vance@contoso.com', reason: 'phished' })).status).toBe(202);
    const over = await ask({ kind: 'disableUser', target: 'jsmith@contoso.com', reason: 'phished too' });
    expect([over.status, over.json.error.code, over.json.action.state]).toEqual([429, 'CircuitOpen', 'blocked']);
  });

  it('holds what a guardrail naming manual requests holds; the requester cannot approve it, another analyst can', async () => {
    const queue = engine.startWorker();
    const res = await ask({ kind: 'isolateDevice', target: 'websrv1.contoso.com', reason: 'ransomware note found', params: { isolationType: 'Selective' } });
    expect(res.status).toBe(202);
    expect(res.json.action).toMatchObject({ state: 'pending-approval', params: { isolationType: 'Selective' }, reason: 'ransomware note found' });
    const key = res.json.action.key as string;
    const approve = async (oid: string) =>
      call(approveAction, `actions/${key}/approve`, { params: { key }, headers: await as(['Responder.Approve'], oid, oid), body: { reason: 'confirmed' } });
    expect((await approve(ANALYST_A)).status).toBe(403);
    expect((await approve(ANALYST_B)).status).toBe(202);
    await queue.idle();
    queue.releaseScheduled();
    await queue.idle();
    queue.stop();
    expect((await engine.ledger.get(key))?.state).toBe('succeeded');
    expect(engine.sandbox.tenant.count('POST', /\/isolate$/)).toBe(1);
    expect(engine.sandbox.tenant.machines.get(DEMO_DEVICES.websrv1)?.isolated).toBe(true);
  });

  it('answers 409 with the action when the same action on the target is already under way, by any of its names', async () => {
    const first = await ask({ kind: 'revokeSessions', target: 'adele.vance@contoso.com', reason: 'first' });
    expect(first.status).toBe(202);
    const again = await ask({ kind: 'revokeSessions', target: DEMO.adele, reason: 'second' }, ANALYST_B);
    expect([again.status, again.json.error.code, again.json.action.key]).toEqual([409, 'AlreadyActive', first.json.action.key]);
    // Two at once: one is recorded, the other told.
    const [x, y] = await Promise.all([
      ask({ kind: 'confirmCompromised', target: DEMO.adele, reason: 'x' }),
      ask({ kind: 'confirmCompromised', target: 'adele.vance@contoso.com', reason: 'y' }, ANALYST_B),
    ]);
    expect([x.status, y.status].sort()).toEqual([202, 409]);
  });

  it('says on the incident what an analyst asked for, when the request names one', async () => {
    const res = await ask({ kind: 'revokeSessions', target: 'adele.vance@contoso.com', reason: 'as discussed', incident: INCIDENT_ARM_ID });
    expect(res.status).toBe(202);
    expect(res.json.action.source.incidentArmId).toBe(INCIDENT_ARM_ID);
  });

  it('answers 404 for a user the directory does not have, and records nothing', async () => {
    const res = await ask({ kind: 'disableUser', target: 'nobody@contoso.com', reason: 'typo' });
    expect([res.status, res.json.error.code]).toEqual([404, 'TargetNotFound']);
    expect(engine.ledger.all()).toEqual([]);
  });

  it('answers 400 naming the field for what it cannot take', async () => {
    for (const [body, field] of [
      [{ kind: 'explode', target: 'adele.vance@contoso.com', reason: 'x' }, 'kind'],
      [{ kind: 'enableUser', target: 'adele.vance@contoso.com', reason: 'x' }, 'kind'],
      [{ kind: 'disableUser', target: 'adele.vance@contoso.com', reason: '   ' }, 'reason'],
      [{ kind: 'disableUser', target: 'adele.vance@contoso.com' }, 'reason'],
      [{ kind: 'disableUser', target: 'wks-042.contoso.com', reason: 'x' }, 'target'],
      [{ kind: 'isolateDevice', target: 'adele.vance@contoso.com', reason: 'x' }, 'target'],
      [{ kind: 'isolateDevice', target: 'x'.repeat(300), reason: 'x' }, 'target'],
      [{ kind: 'isolateDevice', target: 'wks-042.contoso.com', reason: 'x', params: { isolationType: 'Partial' } }, 'params.isolationType'],
      [{ kind: 'disableUser', target: 'adele.vance@contoso.com', reason: 'x', params: { isolationType: 'Full' } }, 'params'],
      [{ kind: 'disableUser', target: 'adele.vance@contoso.com', reason: 'x', incident: 'INC-42' }, 'incident'],
    ] as const) {
      const res = await ask(body);
      expect([res.status, res.json.error.target], JSON.stringify(body).slice(0, 80)).toEqual([400, field]);
    }
    expect(engine.ledger.all()).toEqual([]);
  });

  it('takes the role Responder.Act only', async () => {
    const body = { kind: 'revokeSessions', target: 'adele.vance@contoso.com', reason: 'x' };
    expect((await call(requestAction, 'actions', { body })).status).toBe(401);
    for (const role of ['Incidents.Submit', 'Responder.Read', 'Responder.Approve'])
      expect((await call(requestAction, 'actions', { body, headers: await as([role]) })).status, role).toBe(403);
  });
});
