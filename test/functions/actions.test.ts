import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { approveAction, denyAction, listActions, replayAction, requestAction, rollbackAction, showAction } from '../../functions/actions';
import { listDeadLetters } from '../../functions/deadLetters';
import { incidents } from '../../functions/incidents';
import type { LedgerEntry } from '../../shared/ledger/ledger';
import type { EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import { DEMO, DEMO_DEVICES, SAMPLE_INCIDENT_ID } from '../../sandbox/tenant';
import { sampleIncident } from '../fixtures/incidents';
import { ANALYST_A, ANALYST_B, analystBearer } from '../support/analysts';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';

/** Every action is held for an analyst: the sample incident plans a revocation of Adele's sessions and an isolation. */
const POLICY = (ttl = 'PT24H') => `version: 1
mode: enforce
rules:
  - { id: creds, when: { tactics: [CredentialAccess] }, then: [revokeSessions] }
  - { id: hosts, when: { entity: host }, then: [isolateDevice] }
guardrails:
  approvals: [{ action: '*', reason: every action needs an analyst here }]
  approvalTtl: ${ttl}
`;

const ADELE_REVOKE_SUFFIX = `.revokeSessions.${DEMO.adele}`;

let engine: EngineUnderTest;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());
beforeEach(() => engine.configure({ RESPONDER_POLICY: POLICY() }));

const as = (roles: string[], oid = ANALYST_A, name = 'Analyst A') => analystBearer(engine, roles, oid, name);

/** Submit the sample incident; return its two held actions. */
async function held(): Promise<{ revoke: LedgerEntry; isolate: LedgerEntry }> {
  const res = await call(incidents, 'incidents', { body: sampleIncident(), headers: await engine.bearer(['Incidents.Submit']) });
  expect(res.status).toBe(202);
  const entries = engine.ledger.all();
  const revoke = entries.find((e) => e.kind === 'revokeSessions');
  const isolate = entries.find((e) => e.kind === 'isolateDevice');
  expect([revoke?.state, isolate?.state]).toEqual(['pending-approval', 'pending-approval']);
  return { revoke: revoke!, isolate: isolate! };
}

const approve = async (key: string, headers: Record<string, string>, reason = 'checked with the user') =>
  call(approveAction, `actions/${key}/approve`, { params: { key }, headers, body: { reason } });
const deny = async (key: string, headers: Record<string, string>, reason = 'false positive') =>
  call(denyAction, `actions/${key}/deny`, { params: { key }, headers, body: { reason } });

describe('the analysts: approve and deny held actions', () => {
  it('runs an approved action exactly once, through the worker, and says who approved it and why', async () => {
    const { isolate } = await held();
    const queue = engine.startWorker();
    const res = await approve(isolate.key, await as(['Responder.Approve']));
    expect(res.status).toBe(202);
    expect(res.json.action).toMatchObject({
      key: isolate.key,
      state: 'queued',
      decidedBy: { verdict: 'approved', by: ANALYST_A, reason: 'checked with the user' },
    });
    await queue.idle();
    queue.releaseScheduled(); // the isolation's follow-up
    await queue.idle();
    queue.stop();
    const after = await engine.ledger.get(isolate.key);
    expect(after?.state).toBe('succeeded');
    expect(after?.history.map((h) => h.state)).toEqual(['pending-approval', 'planned', 'queued', 'running', 'queued', 'running', 'succeeded']);
    expect(after?.history[1]).toMatchObject({ by: ANALYST_A, note: 'approved by Analyst A: checked with the user' });
    expect(engine.sandbox.tenant.count('POST', /\/isolate$/)).toBe(1);
    expect(engine.sandbox.tenant.machines.get(DEMO_DEVICES.wks042)?.isolated).toBe(true);
    // The other held action is untouched.
    expect(engine.ledger.all().find((e) => e.kind === 'revokeSessions')?.state).toBe('pending-approval');
  });

  it('lets one of two racing approvals through: the action is sent once', async () => {
    const { revoke } = await held();
    const [a, b] = await Promise.all([
      approve(revoke.key, await as(['Responder.Approve'])),
      approve(revoke.key, await as(['Responder.Approve'], ANALYST_B, 'B')),
    ]);
    expect([a.status, b.status].sort()).toEqual([202, 409]);
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(1);
  });

  it('ends a denied action denied, with the reason, and nothing is sent; it cannot be approved after', async () => {
    const { revoke } = await held();
    const res = await deny(revoke.key, await as(['Responder.Approve']));
    expect(res.status).toBe(200);
    expect(res.json.action).toMatchObject({ state: 'denied', stateReason: 'denied by Analyst A: false positive' });
    const again = await approve(revoke.key, await as(['Responder.Approve'], ANALYST_B, 'B'));
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe('NotPendingApproval');
    expect(again.json.action.state).toBe('denied');
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(0);
    // The incident hears of it, on the action's own comment.
    const incident = engine.sandbox.tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())!;
    expect([...incident.comments.values()].some((c) => /DENIED by an analyst/.test(c.properties.message))).toBe(true);
  });

  it('refuses to deny an action that already ran', async () => {
    const { revoke } = await held();
    const queue = engine.startWorker();
    expect((await approve(revoke.key, await as(['Responder.Approve']))).status).toBe(202);
    await queue.idle();
    queue.stop();
    const res = await deny(revoke.key, await as(['Responder.Approve'], ANALYST_B, 'B'));
    expect(res.status).toBe(409);
    expect(res.json.action.state).toBe('succeeded');
  });

  it('expires a held action past the policy approvalTtl: it can no longer be approved', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY('PT1S') });
    const { revoke } = await held();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const res = await approve(revoke.key, await as(['Responder.Approve']));
    expect(res.status).toBe(409);
    expect(res.json.error.code).toBe('Expired');
    expect((await engine.ledger.get(revoke.key))?.state).toBe('expired');
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(0);
  });

  it('four eyes: the analyst who requested an action cannot approve it; another can', async () => {
    // A request made by analyst A, held for approval (the request route records its requester the same way).
    const key = `${'c'.repeat(40)}${ADELE_REVOKE_SUFFIX}`;
    await engine.ledger.create({
      key,
      kind: 'revokeSessions',
      target: { type: 'user', id: DEMO.adele, upn: 'adele.vance@contoso.com' },
      params: {},
      mode: 'enforce',
      reason: 'requested by analyst A',
      source: { type: 'manual', subject: `request:${key}`, requestedBy: ANALYST_A },
      state: 'pending-approval',
      stateReason: 'needs-approval: every action needs an analyst here',
      createdAt: new Date().toISOString(),
      by: ANALYST_A,
    });
    const revoke = { key };
    const own = await approve(revoke.key, await as(['Responder.Approve']));
    expect(own.status).toBe(403);
    expect(own.json.error.code).toBe('FourEyes');
    expect((await engine.ledger.get(revoke.key))?.state).toBe('pending-approval');
    expect((await approve(revoke.key, await as(['Responder.Approve'], ANALYST_B, 'B'))).status).toBe(202);
  });

  it('answers the role matrix: Read lists and shows, Approve decides, Act requests, rolls back and replays, nothing else does', async () => {
    const { revoke } = await held();
    const key = revoke.key;
    const routes = [
      { what: 'list', run: (h: Record<string, string>) => call(listActions, 'actions', { method: 'GET', headers: h }), ok: 200, role: 'Responder.Read' },
      {
        what: 'show',
        run: (h: Record<string, string>) => call(showAction, `actions/${key}`, { method: 'GET', params: { key }, headers: h }),
        ok: 200,
        role: 'Responder.Read',
      },
      { what: 'deny', run: (h: Record<string, string>) => deny(key, h), ok: 200, role: 'Responder.Approve' },
      // Refused after the role check (the action is denied by then, or not succeeded): the role is what is tested.
      { what: 'approve', run: (h: Record<string, string>) => approve(key, h), ok: 409, role: 'Responder.Approve' },
      {
        what: 'rollback',
        run: (h: Record<string, string>) => call(rollbackAction, `actions/${key}/rollback`, { params: { key }, headers: h, body: { reason: 'undo' } }),
        ok: 409,
        role: 'Responder.Act',
      },
      {
        what: 'replay',
        run: (h: Record<string, string>) => call(replayAction, `actions/${key}/replay`, { params: { key }, headers: h, body: { reason: 'again' } }),
        ok: 409,
        role: 'Responder.Act',
      },
      {
        what: 'dead letters',
        run: (h: Record<string, string>) => call(listDeadLetters, 'deadletters', { method: 'GET', headers: h }),
        ok: 200,
        role: 'Responder.Read',
      },
      {
        what: 'request',
        run: (h: Record<string, string>) =>
          call(requestAction, 'actions', { headers: h, body: { kind: 'revokeSessions', target: 'jsmith@contoso.com', reason: 'x' } }),
        ok: 202,
        role: 'Responder.Act',
      },
    ];
    for (const route of routes) {
      expect((await route.run({})).status, `${route.what} without a token`).toBe(401);
      for (const role of ['Incidents.Submit', 'Responder.Act', 'Responder.Read', 'Responder.Approve'].filter((r) => r !== route.role)) {
        expect((await route.run(await as([role]))).status, `${route.what} with ${role}`).toBe(403);
      }
      // An app-only token (a managed identity: no name) with the role is an analyst like any other.
      const app = await engine.bearer([route.role], { oid: ANALYST_B, name: undefined, appid: '11111111-2222-4333-8444-555555555555', idtyp: 'app' });
      expect((await route.run(app)).status, `${route.what} with ${route.role}`).toBe(route.ok);
    }
    expect((await engine.ledger.get(key))?.decidedBy).toMatchObject({ verdict: 'denied', by: ANALYST_B });
  });

  it('lists newest first, filtered, a page at a time', async () => {
    const { revoke, isolate } = await held();
    const reader = await as(['Responder.Read']);
    const list = (query: Record<string, string>) => call(listActions, 'actions', { method: 'GET', headers: reader, query });
    const all = await list({});
    expect(all.status).toBe(200);
    expect(all.json.actions.map((a: LedgerEntry) => a.key).sort()).toEqual([revoke.key, isolate.key].sort());
    expect((await list({ kind: 'isolateDevice' })).json.actions.map((a: LedgerEntry) => a.key)).toEqual([isolate.key]);
    expect((await list({ target: 'WKS-042.contoso.com' })).json.actions.map((a: LedgerEntry) => a.key)).toEqual([isolate.key]);
    expect((await list({ state: 'pending-approval', incident: SAMPLE_INCIDENT_ID })).json.actions).toHaveLength(2);
    expect((await list({ since: '2999-01-01T00:00:00Z' })).json.actions).toEqual([]);

    const first = await list({ limit: '1' });
    expect(first.json.actions).toHaveLength(1);
    expect(first.json.next).toMatch(/^\/api\/actions\?limit=1&after=/);
    const after = new URL(first.json.next, 'http://localhost').searchParams.get('after')!;
    const second = await list({ limit: '1', after });
    expect(second.json.actions).toHaveLength(1);
    expect(second.json.next).toBeUndefined();
    expect(new Set([first.json.actions[0].key, second.json.actions[0].key])).toEqual(new Set([revoke.key, isolate.key]));
  });

  it('answers 400 naming the field, and 404 for an action it does not have', async () => {
    const approver = await as(['Responder.Approve']);
    const reader = await as(['Responder.Read']);
    const missing = `${'a'.repeat(40)}.revokeSessions.h${'b'.repeat(32)}`;
    expect((await call(showAction, `actions/${missing}`, { method: 'GET', params: { key: missing }, headers: reader })).status).toBe(404);
    const bad = await call(showAction, 'actions/nope', { method: 'GET', params: { key: 'nope' }, headers: reader });
    expect([bad.status, bad.json.error.target]).toEqual([400, 'key']);
    const noReason = await call(approveAction, `actions/${missing}/approve`, { params: { key: missing }, headers: approver, body: {} });
    expect([noReason.status, noReason.json.error.target]).toEqual([400, 'reason']);
    const long = await approve(missing, approver, 'x'.repeat(5000));
    expect([long.status, long.json.error.target]).toEqual([400, 'reason']);
    for (const [query, field] of [
      [{ state: 'done' }, 'state'],
      [{ kind: 'explode' }, 'kind'],
      [{ incident: 'not-an-arm-id' }, 'incident'],
      [{ since: 'yesterday' }, 'since'],
      [{ limit: '0' }, 'limit'],
    ] as const) {
      const res = await call(listActions, 'actions', { method: 'GET', headers: reader, query });
      expect([res.status, res.json.error.target], JSON.stringify(query)).toEqual([400, field]);
    }
  });
});
