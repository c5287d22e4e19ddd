import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { approveAction, denyAction } from '../../functions/actions';
import { runSweep } from '../../functions/sweeps';
import { DEMO, SAMPLE_INCIDENT_ID } from '../../sandbox/tenant';
import { commentIdFor } from '../../shared/clients/sentinel';
import type { LedgerEntry } from '../../shared/ledger/ledger';
import type { MemoryLedger } from '../../shared/ledger/memoryLedger';
import type { EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import { runtime } from '../../shared/runtime';
import { falsePositives, INCIDENTS_PER_PAGE } from '../../shared/sweeps/falsePositives';
import { Sweeps } from '../../shared/sweeps/runner';
import { SWEEP_TIMINGS } from '../../shared/sweeps/sweep';
import { ANALYST_A, ANALYST_B, analystBearer, requestAndRun } from '../support/analysts';
import { EngineUnderTest } from '../support/engine';
import { sweepContext, sweepDeps } from '../support/sweeps';
import { call } from '../support/http';

/** No approval asked for anything: an analyst's rollback would run at once. */
const POLICY = (extra = '') => `version: 1
mode: enforce
${extra}guardrails: { approvals: [] }
rules: []
`;

const ADELE = 'adele.vance@contoso.com';
const WKS042 = 'wks-042.contoso.com';
const CLOSING_COMMENT = 'Adele was travelling: the sign-in was hers';
/** A user of the test's own: the sandbox's others are privileged or protected. */
const PATTI = 'c0000000-0000-4000-8000-00000000a771';

let engine: EngineUnderTest;
let queue: EmbeddedQueue | undefined;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());
afterEach(() => queue?.stop());

/** A fresh engine and tenant under `policy` (keeping `ledger`, if given), its worker running. */
function setUp(policy = POLICY(), ledger?: MemoryLedger): void {
  queue?.stop();
  engine.configure({ RESPONDER_POLICY: policy }, { ...(ledger && { ledger }) });
  queue = engine.startWorker();
}

/** An incident of the sandbox's own beside the sample one: ARM id number `n`. */
function addIncident(n: number): string {
  const armId = SAMPLE_INCIDENT_ID.replace(/[^/]+$/, `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`);
  engine.sandbox.tenant.addIncident(armId, `Incident ${n}`, 'High');
  return armId;
}

/** An analyst's containment for `incident`, carried out to its end. */
async function contained(kind: string, target: string, incident: string): Promise<LedgerEntry> {
  const entry = await requestAndRun(engine, { kind, target, incident }, await analystBearer(engine, ['Responder.Act']));
  expect(entry.state).toBe('succeeded');
  return entry;
}

const incidentOf = (armId: string) => engine.sandbox.tenant.incidents.get(armId.toLowerCase())!;
const rollbacks = () => engine.ledger.all().filter((entry) => entry.source.rollbackOf !== undefined);
/** Incident GETs the sandbox answered, a 404 included. */
const incidentReads = () => engine.sandbox.tenant.calls.filter((c) => c.method === 'GET' && /\/incidents\/[^/]+$/i.test(c.path)).length;
const run = async () => (await runtime()).sweeps.run('falsePositives');

/** POST /api/actions/{key}/approve or deny, as analyst B unless told otherwise. */
async function decide(route: typeof approveAction, verb: string, key: string, oid = ANALYST_B, name = 'Analyst B') {
  const headers = await analystBearer(engine, ['Responder.Approve'], oid, name);
  return call(route, `actions/${key}/${verb}`, { params: { key }, headers, body: { reason: `${verb} after reading the incident` } });
}

describe('the falsePositives sweep', () => {
  it('proposes undoing what an incident closed as FalsePositive contained, held for an analyst though the policy would run it', async () => {
    setUp();
    const disabled = await contained('disableUser', ADELE, SAMPLE_INCIDENT_ID);
    const isolated = await contained('isolateDevice', WKS042, SAMPLE_INCIDENT_ID);
    engine.sandbox.tenant.closeIncident(SAMPLE_INCIDENT_ID, 'FalsePositive', 'IncorrectAlertLogic', CLOSING_COMMENT);

    expect(await run()).toMatchObject({ outcome: 'completed', found: 2, planned: 2, passedOver: 0 });
    await engine.drain();

    const [enable, release] = ['enableUser', 'unisolateDevice'].map((kind) => rollbacks().find((entry) => entry.kind === kind)!);
    for (const [rollback, original] of [
      [enable, disabled],
      [release, isolated],
    ] as const) {
      expect(rollback).toMatchObject({
        state: 'pending-approval',
        reason: `undo ${original.kind} ${original.key}: the incident was closed as FalsePositive (IncorrectAlertLogic): "${CLOSING_COMMENT}"`,
        stateReason: 'needs-approval: proposed by the falsePositives sweep: nothing is undone until an analyst approves it',
        source: { type: 'manual', requestedBy: 'sweep:falsePositives', rollbackOf: original.key, incidentArmId: SAMPLE_INCIDENT_ID },
      });
      expect(rollback?.history.map((event) => event.state)).toEqual(['pending-approval']);
      const now = await engine.ledger.get(original.key);
      expect(now).toMatchObject({ state: 'succeeded', rolledBackBy: rollback?.key });
      expect(now?.history.at(-1)?.note).toMatch(new RegExp(`^rollback ${rollback?.key.replace(/\./g, '\\.')} requested by the falsePositives sweep: undo `));
    }
    // Nothing was undone: the account stays disabled, the device isolated.
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled).toBe(false);
    expect(engine.sandbox.tenant.count('POST', /\/unisolate$/)).toBe(0);

    const incident = incidentOf(SAMPLE_INCIDENT_ID);
    const message = incident.comments.get(commentIdFor(enable!.key))?.properties.message;
    expect(message?.split('\n')).toEqual([
      `Sentinel Responder — enableUser on ${ADELE}: HELD: needs an analyst`,
      'Result: needs-approval: proposed by the falsePositives sweep: nothing is undone until an analyst approves it',
      `Why: undo disableUser ${disabled.key}: the incident was closed as FalsePositive (IncorrectAlertLogic): "${CLOSING_COMMENT}"`,
      `Action: re-enable the account; mode enforce; attempts 0; key ${enable!.key}`,
      `To decide (role Responder.Approve): responder actions approve ${enable!.key} --reason "…" (or deny), or POST /api/actions/${enable!.key}/approve`,
    ]);
    expect(incident.comments.get(commentIdFor(release!.key))?.properties.message).toMatch(/^Sentinel Responder — unisolateDevice on wks-042/);
    // The label written with the comment sent back how the analyst closed it: a PUT clears what it leaves out.
    expect(incident.properties).toMatchObject({ status: 'Closed', classification: 'FalsePositive', classificationComment: CLOSING_COMMENT });
    expect(incident.properties.labels.map((l) => l.labelName)).toContain('responder-needs-attention');
  });

  it('proposes nothing twice: a second run finds nothing and writes no comment', async () => {
    setUp();
    await contained('disableUser', ADELE, SAMPLE_INCIDENT_ID);
    engine.sandbox.tenant.closeIncident(SAMPLE_INCIDENT_ID, 'BenignPositive', 'SuspiciousButExpected');
    expect(await run()).toMatchObject({ found: 1, planned: 1 });
    const comments = engine.sandbox.tenant.count('PUT', /\/comments\//);
    const before = JSON.stringify(engine.ledger.all());

    expect(await run()).toMatchObject({ outcome: 'completed', found: 0, planned: 0, passedOver: 0 });
    expect(JSON.stringify(engine.ledger.all())).toBe(before);
    expect(engine.sandbox.tenant.count('PUT', /\/comments\//)).toBe(comments);
    expect(incidentOf(SAMPLE_INCIDENT_ID).comments.size).toBe(2); // the disable's outcome, and the proposal
  });

  it('runs a proposal an analyst approves, and the original ends rolled back', async () => {
    setUp();
    const disabled = await contained('disableUser', ADELE, SAMPLE_INCIDENT_ID);
    engine.sandbox.tenant.closeIncident(SAMPLE_INCIDENT_ID, 'FalsePositive', 'InaccurateData');
    await run();
    const [proposed] = rollbacks();
    // The sweep proposed it, not analyst A: the analyst who contained Adele may approve her release.
    const approved = await decide(approveAction, 'approve', proposed!.key, ANALYST_A, 'Analyst A');
    expect(approved).toMatchObject({ status: 202, json: { action: { state: 'queued' } } });
    await engine.drain();

    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled).toBe(true);
    expect(await engine.ledger.get(proposed!.key)).toMatchObject({ state: 'succeeded', decidedBy: { verdict: 'approved', by: ANALYST_A } });
    expect(await engine.ledger.get(disabled.key)).toMatchObject({ state: 'rolled-back', rolledBackBy: proposed!.key });
    expect(await run()).toMatchObject({ found: 0 });
  });

  it('refuses to approve a proposal once another containment stands on its target: approving it would undo that one too (attack)', async () => {
    setUp();
    await contained('disableUser', ADELE, SAMPLE_INCIDENT_ID);
    engine.sandbox.tenant.closeIncident(SAMPLE_INCIDENT_ID, 'FalsePositive');
    await run();
    const [proposed] = rollbacks();
    // While the proposal waits, a real compromise: Adele is contained again, for another incident.
    const again = await contained('disableUser', ADELE, addIncident(7));

    const res = await decide(approveAction, 'approve', proposed!.key);
    expect(res).toMatchObject({ status: 409, json: { error: { code: 'HeldByAnother' } } });
    expect(res.json.error.message).toContain(again.key);
    await engine.drain();
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled).toBe(false);
    expect(await engine.ledger.get(proposed!.key)).toMatchObject({ state: 'pending-approval' });
  });

  it('keeps four eyes when an analyst runs it: the analyst who asked for the run cannot approve what it proposed', async () => {
    setUp();
    await contained('disableUser', ADELE, SAMPLE_INCIDENT_ID);
    engine.sandbox.tenant.closeIncident(SAMPLE_INCIDENT_ID, 'FalsePositive');
    const res = await call(runSweep, 'sweeps/falsePositives', { headers: await analystBearer(engine, ['Responder.Act']), params: { name: 'falsePositives' } });
    expect(res.json.run).toMatchObject({ found: 1, planned: 1 });
    const [proposed] = rollbacks();
    expect(proposed?.source.requestedBy).toBe(ANALYST_A);
    expect((await decide(approveAction, 'approve', proposed!.key, ANALYST_A, 'Analyst A')).json.error.code).toBe('FourEyes');
    expect((await decide(approveAction, 'approve', proposed!.key)).status).toBe(202);
  });

  it("never proposes again what an analyst denied: the analyst's word stands", async () => {
    setUp();
    const disabled = await contained('disableUser', ADELE, SAMPLE_INCIDENT_ID);
    engine.sandbox.tenant.closeIncident(SAMPLE_INCIDENT_ID, 'FalsePositive');
    await run();
    const [proposed] = rollbacks();
    expect((await decide(denyAction, 'deny', proposed!.key)).json.action.state).toBe('denied');

    expect(await run()).toMatchObject({ found: 0, planned: 0 });
    expect(rollbacks()).toHaveLength(1);
    expect(await engine.ledger.get(disabled.key)).toMatchObject({ state: 'succeeded', rolledBackBy: proposed!.key });
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled).toBe(false);
  });

  it('withdraws a proposal whose incident was reopened or reclassified since: nothing is left to approve on a stale word', async () => {
    setUp();
    const disabled = await contained('disableUser', ADELE, SAMPLE_INCIDENT_ID);
    engine.sandbox.tenant.closeIncident(SAMPLE_INCIDENT_ID, 'FalsePositive');
    await run();
    const [proposed] = rollbacks();
    expect(proposed).toMatchObject({ state: 'pending-approval' });
    engine.sandbox.tenant.closeIncident(SAMPLE_INCIDENT_ID, 'TruePositive', 'SuspiciousActivity');
    const dry = await (await runtime()).sweeps.run('falsePositives', { dryRun: true });
    expect(dry.findings).toEqual([{ subject: proposed!.key, summary: expect.stringMatching(/^would withdraw proposed enableUser on /) }]);
    expect((await engine.ledger.get(proposed!.key))?.state).toBe('pending-approval');

    expect(await run()).toMatchObject({ found: 1, planned: 0 });
    expect(await engine.ledger.get(proposed!.key)).toMatchObject({
      state: 'denied',
      decidedBy: { verdict: 'denied', by: 'sweep:falsePositives' },
      stateReason: expect.stringContaining('withdrawn: the incident is closed as TruePositive since it was proposed'),
    });
    expect((await decide(approveAction, 'approve', proposed!.key)).status).toBe(409);
    expect(engine.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled).toBe(false);
    expect(await engine.ledger.get(disabled.key)).toMatchObject({ state: 'succeeded' });
    expect([...incidentOf(SAMPLE_INCIDENT_ID).comments.values()].map((c) => c.properties.message)).toContainEqual(expect.stringMatching(/DENIED/));
    // Withdrawn, it is decided: later runs leave it alone.
    expect(await run()).toMatchObject({ found: 0 });
  });

  it('passes over incidents open, closed as TruePositive or Undetermined, or gone, saying why; each read once', async () => {
    setUp();
    engine.sandbox.tenant.addUser({ id: PATTI, userPrincipalName: 'patti.fernandez@contoso.com', displayName: 'Patti Fernandez' });
    const truePositive = addIncident(1);
    const open = addIncident(2);
    const gone = addIncident(3);
    const undetermined = addIncident(4);
    await contained('disableUser', ADELE, truePositive);
    await contained('disableUser', 'jsmith@contoso.com', open);
    await contained('disableUser', 'patti.fernandez@contoso.com', gone);
    await contained('isolateDevice', WKS042, undetermined);
    engine.sandbox.tenant.closeIncident(truePositive, 'TruePositive', 'SuspiciousActivity');
    engine.sandbox.tenant.closeIncident(undetermined, 'Undetermined');
    engine.sandbox.tenant.incidents.delete(gone.toLowerCase());

    const reads = incidentReads();
    const page = await falsePositives.page(await sweepContext({ timings: SWEEP_TIMINGS }, 'sweep:falsePositives'), undefined);
    expect(page.findings).toEqual([]);
    expect(page.passedOver.sort()).toEqual(
      [
        'incident 00000000-0000-4000-8000-000000000001: closed as TruePositive: 1 containment(s) stand',
        'incident 00000000-0000-4000-8000-000000000002: New, not closed: 1 containment(s) stand',
        'incident 00000000-0000-4000-8000-000000000003: no longer in Sentinel (404): 1 containment(s) stand',
        'incident 00000000-0000-4000-8000-000000000004: closed as Undetermined: 1 containment(s) stand',
      ].sort(),
    );
    expect(incidentReads()).toBe(reads + 4);
    expect(await run()).toMatchObject({ outcome: 'completed', found: 0, passedOver: 4 });
    expect(rollbacks()).toEqual([]);
  });

  it('passes over what an audit-mode action did, which changed nothing, without reading its incident', async () => {
    setUp(POLICY().replace('mode: enforce', 'mode: audit'));
    const audited = await contained('disableUser', ADELE, SAMPLE_INCIDENT_ID);
    expect(audited).toMatchObject({ mode: 'audit', attempts: [expect.objectContaining({ outcome: 'audited' })] });
    engine.sandbox.tenant.closeIncident(SAMPLE_INCIDENT_ID, 'FalsePositive');
    const reads = incidentReads();

    expect(await run()).toMatchObject({ outcome: 'completed', found: 0, passedOver: 0 });
    expect(incidentReads()).toBe(reads);
    expect(rollbacks()).toEqual([]);
  });

  it('changes nothing in a dry run: it reads each incident once, records nothing and comments nothing', async () => {
    setUp();
    const disabled = await contained('disableUser', ADELE, SAMPLE_INCIDENT_ID);
    await contained('isolateDevice', WKS042, SAMPLE_INCIDENT_ID);
    engine.sandbox.tenant.closeIncident(SAMPLE_INCIDENT_ID, 'FalsePositive', 'IncorrectAlertLogic', CLOSING_COMMENT);
    const ledger = JSON.stringify(engine.ledger.all());
    const calls = engine.sandbox.tenant.calls.length;

    const res = await call(runSweep, 'sweeps/falsePositives', {
      headers: await analystBearer(engine, ['Responder.Act']),
      params: { name: 'falsePositives' },
      query: { dryRun: 'true' },
    });
    expect(res.json.run).toMatchObject({ dryRun: true, outcome: 'completed', found: 2, planned: 2 });
    expect(res.json.run.findings).toContainEqual({
      subject: disabled.key,
      summary: `would propose rollback of disableUser on ${ADELE} (${disabled.key}): the incident was closed as FalsePositive (IncorrectAlertLogic): "${CLOSING_COMMENT}"`,
    });
    expect(JSON.stringify(engine.ledger.all())).toBe(ledger);
    const made = engine.sandbox.tenant.calls.slice(calls);
    expect(made.map((c) => `${c.method} ${c.path.split('/').slice(-2).join('/')}`)).toEqual([`GET incidents/${incidentOf(SAMPLE_INCIDENT_ID).name}`]);
    expect(await (await runtime()).sweeps.last('falsePositives')).toBeUndefined();
  });

  it('shows the closing comment as inert, bounded text: it cannot forge a line, a tag or a link in the incident', async () => {
    setUp();
    await contained('disableUser', ADELE, SAMPLE_INCIDENT_ID);
    const hostile = `<img src=x onerror=alert(1)>\n\nSentinel Responder — approved: on its way\r\n[approve](https://evil.example/a) **now** \u202e${'A'.repeat(5000)}`;
    engine.sandbox.tenant.closeIncident(SAMPLE_INCIDENT_ID, 'FalsePositive', 'IncorrectAlertLogic', hostile);
    await run();

    const [proposed] = rollbacks();
    expect(proposed!.reason.length).toBeLessThan(600);
    const message = incidentOf(SAMPLE_INCIDENT_ID).comments.get(commentIdFor(proposed!.key))!.properties.message;
    const lines = message.split('\n');
    expect(lines).toHaveLength(5);
    expect(lines.filter((line) => line.startsWith('Sentinel Responder'))).toHaveLength(1);
    expect(message).not.toMatch(/<img|https:\/\/|\u202e|\*\*now/);
    expect(lines[2]).toContain('&lt;img src=x onerror=alert(1)&gt;  Sentinel Responder — approved: on its way  \\[approve\\](hxxps[:]//evil.example/a)');
    expect(lines[2]).toMatch(/A…"$/);
  });

  it('leaves a rollback protection refuses as the engine ends it: blocked, the incident told, and never asked again', async () => {
    setUp();
    await contained('disableUser', ADELE, SAMPLE_INCIDENT_ID);
    setUp(POLICY(`protected: { users: [${ADELE}] }\n`), engine.ledger); // the policy protects her since
    engine.sandbox.tenant.closeIncident(SAMPLE_INCIDENT_ID, 'FalsePositive');

    const first = await run();
    expect(first).toMatchObject({
      found: 1,
      planned: 0,
      findings: [{ summary: expect.stringMatching(/^rollback of disableUser on .+ refused: protected: /) }],
    });
    const [refused] = rollbacks();
    expect(refused).toMatchObject({ kind: 'enableUser', state: 'blocked' });
    expect(incidentOf(SAMPLE_INCIDENT_ID).comments.get(commentIdFor(refused!.key))?.properties.message).toMatch(/: BLOCKED: needs an analyst\n/);
    expect(await run()).toMatchObject({ found: 0 });
    expect(rollbacks()).toHaveLength(1);
  });

  it('reads a page of incidents at a time: a run out of time goes on where it stopped, reading each incident once', async () => {
    setUp();
    const count = INCIDENTS_PER_PAGE + 5;
    const now = new Date().toISOString();
    for (let n = 1; n <= count; n++) {
      const id = `c0000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
      const incident = addIncident(n);
      await engine.ledger.create({
        key: `${'a'.repeat(40)}.disableUser.${id}`,
        kind: 'disableUser',
        target: { type: 'user', id },
        params: {},
        mode: 'enforce',
        reason: 'contain',
        source: { type: 'incident', subject: incident.toLowerCase(), incidentArmId: incident },
        state: 'succeeded',
        rollback: { wasEnabled: true },
        createdAt: now,
        by: 'worker',
      });
    }
    const sweeps = new Sweeps(await sweepDeps({ timings: { ...SWEEP_TIMINGS, budgetMs: 0 } }));
    const reads = incidentReads();

    expect(await sweeps.run('falsePositives')).toMatchObject({ outcome: 'paused', pages: 1, passedOver: INCIDENTS_PER_PAGE, resumed: false });
    expect(await sweeps.run('falsePositives')).toMatchObject({ outcome: 'completed', pages: 1, passedOver: 5, resumed: true });
    expect(incidentReads()).toBe(reads + count);
  });

  it('reads the ledger once a run, however many pages of incidents it reads', async () => {
    setUp();
    const now = new Date().toISOString();
    for (let n = 1; n <= INCIDENTS_PER_PAGE + 5; n++) {
      const id = `c0000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
      const incident = addIncident(n);
      await engine.ledger.create({
        key: `${'b'.repeat(40)}.disableUser.${id}`,
        kind: 'disableUser',
        target: { type: 'user', id },
        params: {},
        mode: 'enforce',
        reason: 'contain',
        source: { type: 'incident', subject: incident.toLowerCase(), incidentArmId: incident },
        state: 'succeeded',
        rollback: { wasEnabled: true },
        createdAt: now,
        by: 'worker',
      });
    }
    const { ledger } = await runtime();
    let lists = 0;
    const counted = { ...ledger, list: (...args: Parameters<typeof ledger.list>) => (lists++, ledger.list(...args)) };
    await falsePositives.page(await sweepContext({ ledger: counted }), undefined);
    const onePage = lists;

    expect(await new Sweeps(await sweepDeps({ ledger: counted })).run('falsePositives')).toMatchObject({ outcome: 'completed', pages: 2 });
    expect(lists).toBe(2 * onePage);
  });

  it('fails a run on any other ARM failure, and says so; the next run reads again', async () => {
    setUp();
    for (const n of [1, 2]) await contained('disableUser', n === 1 ? ADELE : 'jsmith@contoso.com', addIncident(n));
    engine.sandbox.faults.add({
      method: 'GET',
      path: /\/incidents\/[^/]+$/i,
      count: 1,
      status: 500,
      body: { error: { code: 'InternalServerError', message: 'boom' } },
    });
    await expect(run()).rejects.toMatchObject({ status: 500 });
    expect(await (await runtime()).sweeps.last('falsePositives')).toMatchObject({ outcome: 'failed' });
    expect(await run()).toMatchObject({ outcome: 'completed', passedOver: 2 });
  });
});
