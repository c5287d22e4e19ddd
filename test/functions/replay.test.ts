import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { replayAction, requestAction, showAction } from '../../functions/actions';
import type { LedgerEntry } from '../../shared/ledger/ledger';
import { EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import { DEMO } from '../../sandbox/tenant';
import {
  ANALYST_A,
  ANALYST_B,
  analystBearer,
  deadLetteredRevocation,
  ENFORCE_NO_RULES,
  failedRevocation,
  requestAndRun,
  requestRollback,
} from '../support/analysts';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';
import { command, recordedEntry } from '../fixtures/commands';

/**
 * POST /api/actions/{key}/replay: an analyst sends a failed or dead-lettered action again, through the API and in their
 * own name.
 */
let engine: EngineUnderTest;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());
beforeEach(() => engine.configure({ RESPONDER_POLICY: ENFORCE_NO_RULES }));

const as = (roles: string[], oid = ANALYST_A, name = 'Analyst A') => analystBearer(engine, roles, oid, name);
const actor = () => as(['Responder.Act']);
const replay = async (key: string, body: unknown = { reason: 'the Graph outage is over' }, headers?: Record<string, string>) =>
  call(replayAction, `actions/${key}/replay`, { params: { key }, headers: headers ?? (await actor()), body });
const MISSING = `${'a'.repeat(40)}.revokeSessions.h${'b'.repeat(32)}`;

/** Run what the queue holds with the real worker, and return the entry as it ends. */
async function run(key: string): Promise<LedgerEntry> {
  const queue = engine.startWorker();
  await engine.drain();
  queue.stop();
  return (await engine.ledger.get(key))!;
}

describe('POST /api/actions/{key}/replay', () => {
  it('sends a failed action again, recorded in the caller’s name, and it runs to the end', async () => {
    const failed = await failedRevocation(engine, 'adele.vance@contoso.com', await actor());
    const res = await replay(failed.key);
    expect(res.status).toBe(202);
    expect(res.json.action).toMatchObject({ key: failed.key, state: 'queued', replays: 1 });
    // As an approval records an analyst: the object id as the actor, the name and the reason in the note.
    expect(res.json.action.history.at(-2)).toMatchObject({
      state: 'planned',
      by: ANALYST_A,
      note: 'replay 1 requested by Analyst A: the Graph outage is over',
    });

    const after = await run(failed.key);
    expect(after.state).toBe('succeeded');
    expect(after.history.map((h) => h.state)).toEqual(['planned', 'queued', 'running', 'failed', 'planned', 'queued', 'running', 'succeeded']);
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.sessionRevocations).toBe(1);
    // Succeeded now: there is nothing to send again.
    const again = await replay(failed.key);
    expect([again.status, again.json.error.code, again.json.action.state]).toEqual([409, 'NotReplayable', 'succeeded']);
    expect(again.json.error.message).toBe(`action ${failed.key} is succeeded: only a failed or dead-lettered action can be replayed`);
  });

  it('sends a dead-lettered action again: one whose every delivery crashed its worker', async () => {
    engine.configure({ RESPONDER_POLICY: ENFORCE_NO_RULES }, { queue: new EmbeddedQueue({ maxDeliveryCount: 1 }) });
    const { key } = await deadLetteredRevocation(engine, 'adele.vance@contoso.com', await actor());
    expect((await engine.ledger.get(key))?.state).toBe('dead-lettered');

    expect((await replay(key, { reason: 'the worker is fixed' })).status).toBe(202);
    expect((await run(key)).state).toBe('succeeded');
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.sessionRevocations).toBe(1);
  });

  it('refuses what did not fail with 409 NotReplayable and the action: queued, pending approval', async () => {
    const queued = await call(requestAction, 'actions', {
      body: { kind: 'revokeSessions', target: 'jsmith@contoso.com', reason: 'x' },
      headers: await actor(),
    });
    const res = await replay(queued.json.action.key);
    expect([res.status, res.json.error.code, res.json.action.state]).toEqual([409, 'NotReplayable', 'queued']);
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(1);

    engine.configure({ RESPONDER_POLICY: `${ENFORCE_NO_RULES}guardrails: { approvals: [{ action: '*', reason: all held }] }\n` });
    const held = await call(requestAction, 'actions', { body: { kind: 'revokeSessions', target: 'jsmith@contoso.com', reason: 'x' }, headers: await actor() });
    expect(held.json.action.state).toBe('pending-approval');
    const refused = await replay(held.json.action.key);
    expect([refused.status, refused.json.error.code, refused.json.action.state]).toEqual([409, 'NotReplayable', 'pending-approval']);
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(0);
  });

  it('answers 404 for an action the ledger does not have', async () => {
    const res = await replay(MISSING);
    expect([res.status, res.json.error.code, res.json.error.message]).toEqual([404, 'NotFound', `no action ${MISSING} in the ledger`]);
  });

  it('needs a reason: missing, blank, not text or longer than 4000 characters is a 400 naming reason; no body at all, naming body', async () => {
    const failed = await failedRevocation(engine, 'adele.vance@contoso.com', await actor());
    for (const body of [{}, { reason: '' }, { reason: '   ' }, { reason: null }, { reason: ['x'] }, { reason: { text: 'x' } }, { reason: 'x'.repeat(4001) }]) {
      const res = await replay(failed.key, body);
      expect([res.status, res.json.error.target], JSON.stringify(body).slice(0, 40)).toEqual([400, 'reason']);
    }
    const none = await call(replayAction, `actions/${failed.key}/replay`, { params: { key: failed.key }, headers: await actor() });
    expect([none.status, none.json.error.target]).toEqual([400, 'body']);
    // Nothing was sent by any of them.
    expect((await engine.ledger.get(failed.key))?.state).toBe('failed');
  });

  it('refuses hostile keys with a 400 naming key, echoing at most 40 characters of them', async () => {
    for (const key of [
      'nope',
      '../../deadletters',
      `${'a'.repeat(40)}.revokeSessions.h${'b'.repeat(32)}\n`,
      `${'a'.repeat(40)}.revokeSessions.h${'b'.repeat(32)}/../x`,
      `${'A'.repeat(40)}.revokeSessions.h${'b'.repeat(32)}`,
      `${'a'.repeat(40)}.restorePimAssignments.h${'b'.repeat(31)}`,
      `${'a'.repeat(40)}.revokeSessions.h${'b'.repeat(32)}\u0000`,
      '__proto__',
      "' or PartitionKey ne '",
      'x'.repeat(100_000),
    ]) {
      const res = await replay(key);
      expect([res.status, res.json.error.target], key.slice(0, 60)).toEqual([400, 'key']);
      expect(res.json.error.message.length).toBeLessThan(200);
    }
  });

  it('answers the roles: Act replays; Read, Approve and Submit do not; no token is 401', async () => {
    const failed = await failedRevocation(engine, 'adele.vance@contoso.com', await actor());
    expect((await replay(failed.key, undefined, {})).status).toBe(401);
    for (const role of ['Responder.Read', 'Responder.Approve', 'Incidents.Submit']) {
      expect((await replay(failed.key, undefined, await as([role]))).status, role).toBe(403);
    }
    expect((await engine.ledger.get(failed.key))?.state).toBe('failed');
    // An app-only token (a managed identity: no name) with the role is recorded by its id, as any analyst.
    const app = await engine.bearer(['Responder.Act'], { oid: ANALYST_B, name: undefined, appid: '11111111-2222-4333-8444-555555555555', idtyp: 'app' });
    const res = await replay(failed.key, undefined, app);
    expect(res.status).toBe(202);
    expect(res.json.action.history.at(-2)).toMatchObject({
      by: ANALYST_B,
      note: expect.stringMatching(/^replay 1 requested by \S+: the Graph outage is over$/),
    });
  });

  it('of two analysts replaying at once, the action is sent once', async () => {
    const failed = await failedRevocation(engine, 'adele.vance@contoso.com', await actor());
    const [a, b] = await Promise.all([replay(failed.key), replay(failed.key, undefined, await as(['Responder.Act'], ANALYST_B, 'Analyst B'))]);
    expect([a.status, b.status].sort()).toEqual(expect.arrayContaining([202]));
    expect([a.status, b.status].every((status) => status === 202 || status === 409)).toBe(true);
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(1);
    const after = await run(failed.key);
    expect([after.state, after.replays]).toEqual(['succeeded', 1]);
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.sessionRevocations).toBe(1);
  });

  it('when the queue does not take it: 503, the entry waits planned, and replaying again sends that same replay, in the caller’s name', async () => {
    const failed = await failedRevocation(engine, 'adele.vance@contoso.com', await actor());
    const queue = engine.queue as EmbeddedQueue;
    const send = queue.send.bind(queue);
    queue.send = async () => {
      throw new Error('ServiceBusError: ServiceTimeout');
    };
    const down = await replay(failed.key);
    queue.send = send;
    expect([down.status, down.json.error.code]).toEqual([503, 'QueueUnavailable']);
    expect(await engine.ledger.get(failed.key)).toMatchObject({ state: 'planned', replays: 1 });

    const again = await replay(failed.key, { reason: 'the queue is back' }, await as(['Responder.Act'], ANALYST_B, 'Analyst B'));
    expect(again.status).toBe(202);
    expect(again.json.action).toMatchObject({ state: 'queued', replays: 1 });
    expect(again.json.action.history.at(-1)).toMatchObject({ state: 'queued', by: ANALYST_B, note: 'replay 1 sent again by Analyst B: the queue is back' });
    expect((await run(failed.key)).state).toBe('succeeded');
  });

  it('SAFETY: a replay takes its place in the caps: actions that failed in earlier windows are not all sent again in one', async () => {
    engine.configure({ RESPONDER_POLICY: `${ENFORCE_NO_RULES}guardrails: { caps: [{ action: revokeSessions, max: 1, per: PT1H }] }\n` });
    // Three revocations that failed in three earlier hours, each the one its hour's cap allowed.
    const failed: string[] = [];
    for (const [n, user] of [DEMO.adele, DEMO.jsmith, DEMO.megan].entries()) {
      const createdAt = new Date(Date.now() - (n + 2) * 3_600_000).toISOString();
      const sent = command('revokeSessions', { type: 'user', id: user }, { createdAt }, n + 1);
      await engine.ledger.create(recordedEntry(sent, 'failed', { stateReason: 'Graph answered 503 eight times' }));
      failed.push(sent.idempotencyKey);
    }
    const answers: Awaited<ReturnType<typeof replay>>[] = [];
    for (const key of failed) answers.push(await replay(key));
    expect(answers.map((res) => res.status)).toEqual([202, 429, 429]);
    expect(answers[1]?.json.error).toMatchObject({ code: 'CircuitOpen', message: expect.stringContaining('cap reached: 1 revokeSessions per PT1H') });
    // Refused, they stay failed, to be replayed once the window has room.
    for (const key of failed.slice(1)) expect((await engine.ledger.get(key))?.state).toBe('failed');

    await run(failed[0]!);
    const revoked = [DEMO.adele, DEMO.jsmith, DEMO.megan].map((user) => engine.sandbox.tenant.users.get(user)?.sessionRevocations ?? 0);
    expect(revoked).toEqual([1, 0, 0]);
  });

  it('SAFETY: a failed rollback is not sent again while another containment holds its target', async () => {
    let queue = engine.startWorker();
    const first = await requestAndRun(engine, { kind: 'disableUser', target: 'adele.vance@contoso.com' }, await actor());
    queue.stop();
    expect(first.state).toBe('succeeded');
    engine.sandbox.faults.add({ method: 'PATCH', count: 1, status: 400, body: { error: { code: 'Request_BadRequest', message: 'no' } } });
    const undo = await requestRollback(first.key, 'false positive', await actor());
    expect(undo.status).toBe(202);
    const enable = await run(undo.json.action.key);
    expect(enable.state).toBe('failed');
    // Meanwhile another incident disables her again: that containment stands.
    queue = engine.startWorker();
    const second = await requestAndRun(engine, { kind: 'disableUser', target: DEMO.adele }, await actor());
    queue.stop();
    expect(second.state).toBe('succeeded');

    const res = await replay(enable.key, { reason: 'try the rollback again' });
    expect([res.status, res.json.error.code, res.json.action.key]).toEqual([409, 'HeldByAnother', first.key]);
    expect(res.json.error.message).toContain(second.key);
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled).toBe(false);
    const shown = await call(showAction, `actions/${enable.key}`, { method: 'GET', params: { key: enable.key }, headers: await as(['Responder.Read']) });
    expect(shown.json.action.state).toBe('failed');
  });
});
