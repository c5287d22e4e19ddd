import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { DEMO, GLOBAL_ADMINISTRATOR, SAMPLE_INCIDENT_ID, SECURITY_ADMINISTRATOR } from '../../sandbox/tenant';
import { commentIdFor } from '../../shared/clients/sentinel';
import type { LedgerEntry } from '../../shared/ledger/ledger';
import { DEFAULT_POLICY_PATH } from '../../shared/policy/load';
import { runtime } from '../../shared/runtime';
import { privilegeDrift } from '../../shared/sweeps/privilegeDrift';
import { SWEEP_TIMINGS } from '../../shared/sweeps/sweep';
import { analystBearer, requestAndRun, requestRollback } from '../support/analysts';
import { EngineUnderTest } from '../support/engine';
import { sweepContext } from '../support/sweeps';

/** The shipped default policy, enforced: what its rules do to a drift finding when they may act at all. */
const DEFAULT_ENFORCED = readFileSync(DEFAULT_POLICY_PATH, 'utf8').replace(/^mode: audit$/m, 'mode: enforce');
/** Analysts' requests only, and a rule that ends roles a drift finding names. */
const ACTING = `version: 1
mode: enforce
protected: { users: [breakglass1@contoso.com] }
rules:
  - { id: privilege-drift, when: { source: [sweep], labels: [privilegeDrift], entity: account }, then: [requirePimReapproval] }
`;
const RECORDING = `version: 1
mode: enforce
rules: []
`;

let engine: EngineUnderTest;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());

const tenant = () => engine.sandbox.tenant;
const rolesOf = (id: string) => tenant().roleAssignments.filter((a) => a.principalId === id);
const incidentComments = () => [...(tenant().incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())?.comments.values() ?? [])];
const driftDecisions = async () => (await engine.ledger.listDecisions('1970-01-01T00:00:00.000Z')).filter((d) => d.subject.startsWith('privilegeDrift:'));
const sweep = async (options: { dryRun?: boolean } = {}) => (await runtime()).sweeps.run('privilegeDrift', options);
/** Writes to the directory (Graph), as against comments and labels on incidents (ARM). */
const graphWrites = () => tenant().calls.filter((c) => c.method !== 'GET' && c.path.startsWith('/v1.0/')).length;

/** An analyst ends Megan's activated Global Administrator role from the sample incident, through the pipeline. */
async function removeMegansRole(): Promise<LedgerEntry> {
  const headers = await analystBearer(engine, ['Responder.Act', 'Responder.Read']);
  const removed = await requestAndRun(
    engine,
    { kind: 'requirePimReapproval', target: 'megan.bowen@contoso.com', incident: SAMPLE_INCIDENT_ID, reason: 'risky admin' },
    headers,
  );
  expect(removed).toMatchObject({ state: 'succeeded', rollback: { principalId: DEMO.megan, removed: [{ roleDefinitionId: GLOBAL_ADMINISTRATOR }] } });
  expect(rolesOf(DEMO.megan)).toEqual([]);
  return removed;
}

/** A page read as the runner reads it, to see what it passed over and why (the run keeps only their count). */
async function page(): Promise<{ found: string[]; passedOver: string[] }> {
  const incidents = async (): Promise<never> => {
    throw new Error('a page comments nothing');
  };
  const context = await sweepContext({ incidents, timings: SWEEP_TIMINGS }, 'test');
  const read = await privilegeDrift.page(context, undefined);
  return { found: read.findings.map((f) => f.subject), passedOver: read.passedOver };
}

/** The engine under `policy`, its worker running until the test ends. */
function start(policy: string): void {
  engine.configure({ RESPONDER_POLICY: policy });
  const worker = engine.startWorker();
  onTestFinished(() => worker.stop());
}

describe('the privilegeDrift sweep', () => {
  it('records a role assigned again directly, comments on the incident, and does nothing under the default policy', async () => {
    start(DEFAULT_ENFORCED);
    const removed = await removeMegansRole();
    // An administrator assigns the role as active, outside PIM: no approval was asked of anyone.
    tenant().assignRole(DEMO.megan, GLOBAL_ADMINISTRATOR, 'Assigned');
    const since = rolesOf(DEMO.megan)[0]?.startDateTime as string;
    const before = { entries: (await engine.ledger.list({})).length, writes: graphWrites() };

    const run = await sweep();
    const subject = `privilegeDrift:${DEMO.megan}:${GLOBAL_ADMINISTRATOR}:/:${since}`;
    expect(run).toMatchObject({ outcome: 'completed', found: 1, planned: 0, passedOver: 0 });
    expect(run.findings).toEqual([
      { subject, summary: expect.stringMatching(/again \(direct assignment\) since .*: score \d+ \| no rule matched \| nothing planned$/) },
    ]);
    await engine.drain();

    // Recorded: the decision, though nothing was planned; Megan is privileged and at risk, and still no rule acted.
    expect(await driftDecisions()).toEqual([expect.objectContaining({ subject, by: 'sweep:privilegeDrift', actions: 0 })]);
    expect(await engine.ledger.list({})).toHaveLength(before.entries);
    expect(graphWrites()).toBe(before.writes);
    expect(rolesOf(DEMO.megan)).toEqual([expect.objectContaining({ roleDefinitionId: GLOBAL_ADMINISTRATOR, assignmentType: 'Assigned' })]);
    const comment = tenant().incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())?.comments.get(commentIdFor(subject));
    expect(comment?.properties.message.split('\n')).toEqual([
      `Sentinel Responder — PRIVILEGE DRIFT: megan.bowen@contoso.com holds role ${GLOBAL_ADMINISTRATOR} again`,
      'How: direct assignment: assigned as active (Assigned), not activated through PIM',
      `When: since ${since}, after action ${removed.key} removed it at ${removed.history.find((h) => h.state === 'succeeded')?.at} (scope /)`,
      expect.stringMatching(/^Policy decided: score \d+ \\\| no rule matched \\\| nothing planned$/),
      'Only a rule naming the label acts on such findings: when: { source: sweep, labels: [privilegeDrift] }',
    ]);

    // A second run finds it decided: no second decision, action or comment.
    const comments = incidentComments().length;
    const again = await sweep();
    expect(again).toMatchObject({ found: 0, planned: 0, passedOver: 1 });
    expect(incidentComments()).toHaveLength(comments);
    expect(await driftDecisions()).toHaveLength(1);
    expect((await page()).passedOver).toEqual([expect.stringMatching(/^megan\.bowen@contoso\.com holds .* again \(direct assignment\) since .*: decided at /)]);

    // Unless something it decided waits for data: a finding has no incident to be looked at again, so the run decides again.
    await engine.ledger.create({
      key: '0123456789abcdef0123456789abcdef01234567.revokeSessions.2b3c4d5e-0000-4000-8000-000000000042',
      kind: 'revokeSessions',
      target: { type: 'user', id: DEMO.megan },
      params: {},
      mode: 'enforce',
      reason: 'waits for user risk',
      source: { type: 'sweep', subject },
      state: 'waiting',
      createdAt: new Date().toISOString(),
      by: 'sweep:privilegeDrift',
    });
    expect(await sweep()).toMatchObject({ found: 1, passedOver: 0 });
    expect(incidentComments()).toHaveLength(comments);
  });

  it('acts when a rule names the label: the role is ended again, under a key of its own', async () => {
    start(ACTING);
    const removed = await removeMegansRole();
    tenant().assignRole(DEMO.megan, GLOBAL_ADMINISTRATOR, 'Assigned');

    const run = await sweep();
    expect(run).toMatchObject({ found: 1, planned: 1 });
    await engine.drain();
    const [again] = (await engine.ledger.list({ kind: 'requirePimReapproval' })).filter((e) => e.key !== removed.key);
    expect(again).toMatchObject({
      state: 'succeeded',
      source: { type: 'sweep', ruleId: 'privilege-drift', subject: run.findings[0]?.subject },
      rollback: { removed: [{ roleDefinitionId: GLOBAL_ADMINISTRATOR, assignmentType: 'Assigned' }] },
    });
    expect(rolesOf(DEMO.megan)).toEqual([]);
    expect(incidentComments().find((c) => c.name === commentIdFor(run.findings[0]?.subject as string))?.properties.message).toMatch(
      /Policy decided: .*rules privilege-drift .*planned: requirePimReapproval/,
    );
    // Nothing came back since: both removals are looked at, and nothing is found.
    expect(await sweep()).toMatchObject({ found: 0, planned: 0, passedOver: 0 });
  });

  it('passes over an activation an approver approved, saying which request and approval', async () => {
    start(ACTING);
    await removeMegansRole();
    const request = tenant().activateRole(DEMO.megan, GLOBAL_ADMINISTRATOR, { approver: 'approver-1' });
    expect(request).toMatchObject({ status: 'Provisioned', approvalId: expect.stringContaining('approver-1') });

    expect(await sweep()).toMatchObject({ found: 0, planned: 0, passedOver: 1 });
    expect((await page()).passedOver).toEqual([
      expect.stringMatching(
        new RegExp(
          `^megan\\.bowen@contoso\\.com \\(action .+\\): ${GLOBAL_ADMINISTRATOR} at / was activated at .+ with an approval: request ${request.id}, approval ${request.approvalId}$`,
        ),
      ),
    ]);
    expect(await driftDecisions()).toEqual([]);
    expect(rolesOf(DEMO.megan)).toHaveLength(1);
  });

  it('finds an activation no approver saw (the policy gap) and reads the request history once for it', async () => {
    start(RECORDING);
    await removeMegansRole();
    tenant().activationApproval.set(GLOBAL_ADMINISTRATOR, false);
    const request = tenant().activateRole(DEMO.megan, GLOBAL_ADMINISTRATOR);
    expect(request).toMatchObject({ status: 'Provisioned', approvalId: null });
    // A later request waits for its approver: it carries an approvalId already, and gave nothing.
    tenant().activationApproval.set(GLOBAL_ADMINISTRATOR, true);
    const pending = tenant().activateRole(DEMO.megan, GLOBAL_ADMINISTRATOR);
    pending.createdDateTime = new Date(Date.now() + 1000).toISOString();
    expect(pending).toMatchObject({ status: 'PendingApproval', approvalId: expect.any(String) });
    // Graph named no schedule for the instance: its request is the latest activation of the role since the removal.
    (rolesOf(DEMO.megan)[0] as { roleAssignmentScheduleId: string }).roleAssignmentScheduleId = '';

    const run = await sweep();
    expect(run).toMatchObject({ found: 1, planned: 0 });
    expect(run.findings[0]?.summary).toMatch(/again \(activation without approval\)/);
    expect(tenant().calls.filter((c) => c.method === 'GET' && c.path.endsWith('/roleAssignmentScheduleRequests'))).toHaveLength(1);
    const subject = run.findings[0]?.subject as string;
    expect(await driftDecisions()).toEqual([expect.objectContaining({ subject, actions: 0 })]);
    expect(incidentComments().find((c) => c.name === commentIdFor(subject))?.properties.message).toContain(
      `How: activation without approval: PIM request ${request.id} activated it with no approval: the role's policy lets the user activate it alone`,
    );
  });

  it('judges no activation when Graph refuses the request history, and says so, instead of failing every run', async () => {
    start(RECORDING);
    await removeMegansRole();
    tenant().activationApproval.set(GLOBAL_ADMINISTRATOR, false);
    tenant().activateRole(DEMO.megan, GLOBAL_ADMINISTRATOR);
    const refusal = { error: { code: 'Authorization_RequestDenied', message: 'Insufficient privileges to complete the operation.' } };
    engine.sandbox.faults.add({ path: /roleAssignmentScheduleRequests$/, count: 2, status: 403, body: refusal });

    expect(await sweep()).toMatchObject({ outcome: 'completed', found: 0, passedOver: 1 });
    expect((await page()).passedOver).toEqual([
      expect.stringMatching(/was activated at .*; Graph refused to list its PIM requests \(403 Authorization_RequestDenied\): a human should look$/),
    ]);
  });

  it("never acts on a protected user's drift, whatever rule names it", async () => {
    engine.configure({ RESPONDER_POLICY: ACTING });
    // A removal from before the account was listed as protected; the account holds the role again (seeded Assigned).
    const removal = {
      key: '0123456789abcdef0123456789abcdef01234567.requirePimReapproval.99999999-9999-4999-8999-999999999999',
      kind: 'requirePimReapproval' as const,
      target: { type: 'user' as const, id: DEMO.breakglass },
      params: {},
      mode: 'enforce' as const,
      reason: 'contained before it was protected',
      source: { type: 'incident' as const, subject: SAMPLE_INCIDENT_ID.toLowerCase(), incidentArmId: SAMPLE_INCIDENT_ID },
      state: 'succeeded' as const,
      rollback: { principalId: DEMO.breakglass, removed: [{ roleDefinitionId: GLOBAL_ADMINISTRATOR, directoryScopeId: '/', assignmentType: 'Assigned' }] },
      createdAt: new Date(Date.now() - 3_600_000).toISOString(),
      by: 'worker',
    };
    await engine.ledger.create(removal);

    const run = await sweep();
    expect(run).toMatchObject({ found: 1, planned: 0 });
    expect(run.findings[0]?.summary).toMatch(/1 refused \(protected\)$/);
    await engine.drain();
    expect(await engine.ledger.list({ state: 'succeeded' })).toEqual([expect.objectContaining({ key: removal.key })]);
    expect(rolesOf(DEMO.breakglass)).toHaveLength(1);
    expect(tenant().calls.filter((c) => c.method === 'POST' && c.path.includes('/roleManagement/'))).toEqual([]);
  });

  it('changes nothing in a dry run: it plans, records nothing, comments nothing and keeps no place', async () => {
    start(ACTING);
    await removeMegansRole();
    tenant().assignRole(DEMO.megan, GLOBAL_ADMINISTRATOR, 'Assigned');
    const before = { entries: await engine.ledger.list({}), calls: tenant().calls.length, comments: incidentComments().length };

    const dry = await sweep({ dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, outcome: 'completed', found: 1, planned: 1 });
    expect(dry.summary).toMatch(/^sweep privilegeDrift \(dry run\) completed: 1 found in 1 page\(s\), would plan 1 action\(s\)/);
    expect(await engine.ledger.list({})).toEqual(before.entries);
    expect(await driftDecisions()).toEqual([]);
    expect(
      tenant()
        .calls.slice(before.calls)
        .filter((c) => c.method !== 'GET'),
    ).toEqual([]);
    expect(incidentComments()).toHaveLength(before.comments);
    expect(await (await runtime()).sweeps.last('privilegeDrift')).toBeUndefined();
    // And the real run after it still finds the drift undecided.
    expect(await sweep()).toMatchObject({ found: 1, planned: 1 });
    await engine.drain();
  });

  it('reads 20 removals a page, and a run out of time leaves its place to the next run', async () => {
    engine.configure({ RESPONDER_POLICY: RECORDING });
    const hex = (i: number) => i.toString(16).padStart(12, '0');
    for (let i = 0; i < 21; i++) {
      const user = `00000000-0000-4000-8000-${hex(i)}`;
      await engine.ledger.create({
        key: `${hex(i).padStart(40, '0')}.requirePimReapproval.${user}`,
        kind: 'requirePimReapproval',
        target: { type: 'user', id: user },
        params: {},
        mode: 'enforce',
        reason: 'risky admin',
        source: { type: 'manual', subject: `request-${i}` },
        state: 'succeeded',
        rollback: { principalId: user, removed: [{ roleDefinitionId: GLOBAL_ADMINISTRATOR, directoryScopeId: '/', assignmentType: 'Activated' }] },
        createdAt: new Date(Date.now() - 3_600_000 + i).toISOString(),
        by: 'worker',
      });
    }
    const reads = () =>
      tenant().calls.filter((c) => c.path.endsWith('/roleAssignmentScheduleInstances') && c.query?.includes('00000000-0000-4000-8000-')).length;
    const { sweeps } = await runtime();
    expect(await sweeps.run('privilegeDrift', { budgetMs: 0 })).toMatchObject({ outcome: 'paused', pages: 1, resumed: false });
    expect(reads()).toBe(20);
    expect(await sweeps.run('privilegeDrift', { budgetMs: 0 })).toMatchObject({ outcome: 'completed', pages: 1, resumed: true });
    expect(reads()).toBe(21);
  });

  it("does not look at a removal that was rolled back: roles given back are the engine's own", async () => {
    start(RECORDING);
    tenant().assignRole(DEMO.jsmith, SECURITY_ADMINISTRATOR, 'Assigned');
    const headers = await analystBearer(engine, ['Responder.Act', 'Responder.Read']);
    const removed = await requestAndRun(engine, { kind: 'requirePimReapproval', target: 'jsmith@contoso.com' }, headers);
    expect(removed.state).toBe('succeeded');
    expect((await requestRollback(removed.key, 'false positive', headers)).status).toBe(202);
    await engine.drain();
    expect(await engine.ledger.get(removed.key)).toMatchObject({ state: 'rolled-back' });
    expect(rolesOf(DEMO.jsmith)).toEqual([expect.objectContaining({ roleDefinitionId: SECURITY_ADMINISTRATOR, assignmentType: 'Assigned' })]);

    const calls = tenant().calls.length;
    expect(await sweep()).toMatchObject({ found: 0, passedOver: 0 });
    expect(tenant().calls.slice(calls)).toEqual([]); // not a candidate: nothing read about it
  });
});

describe('attacks on the privilegeDrift sweep', () => {
  it('looks at a removal whose rollback only waits for an approver: nothing was given back yet', async () => {
    start(RECORDING);
    const removed = await removeMegansRole();
    // The incident closed as a false positive (by the attacker, say): the falsePositives sweep proposes the rollback, held.
    const { engine: responder } = await runtime();
    const proposal = await responder.rollback(
      removed.key,
      { objectId: 'sweep:falsePositives', name: 'the falsePositives sweep' },
      'closed as FalsePositive',
      undefined,
      {
        hold: 'proposed by the falsePositives sweep',
      },
    );
    expect(proposal.entry).toMatchObject({ state: 'pending-approval' });
    tenant().assignRole(DEMO.megan, GLOBAL_ADMINISTRATOR, 'Assigned');

    expect(await sweep()).toMatchObject({ found: 1 });
  });

  it('does not take an approval given before the removal for the activation it scheduled to start after it', async () => {
    start(RECORDING);
    // Before anyone saw a risk, Megan had an activation approved to start later: the approval predates the containment.
    const early = tenant().recordRoleRequest('selfActivate', DEMO.megan, GLOBAL_ADMINISTRATOR, 'Provisioned', {
      approvalId: 'approval-before-the-risk',
      startedMsAgo: 1000,
    });
    await removeMegansRole();
    tenant().assignRole(DEMO.megan, GLOBAL_ADMINISTRATOR, 'Activated', 0, early.targetScheduleId as string);

    const run = await sweep();
    expect(run).toMatchObject({ found: 1, planned: 0 });
    expect(run.findings[0]?.summary).toMatch(/again \(activation approved before the removal\)/);
  });

  it('does not take another approved request for the activation whose request a flood of requests pushed out of the history read', async () => {
    start(RECORDING);
    await removeMegansRole();
    // An activation an approver approved, since ended; then enough requests to fill the pages read; then one no approver saw.
    tenant().activateRole(DEMO.megan, GLOBAL_ADMINISTRATOR, { approver: 'approver-1' });
    tenant().roleAssignments.splice(
      tenant().roleAssignments.findIndex((a) => a.principalId === DEMO.megan),
      1,
    );
    tenant().graphPageSize = 2;
    for (let i = 0; i < 10; i++)
      tenant().recordRoleRequest('selfActivate', DEMO.megan, SECURITY_ADMINISTRATOR, 'PendingApproval', { approvalId: `flood-${i}` });
    tenant().activationApproval.set(GLOBAL_ADMINISTRATOR, false);
    const unapproved = tenant().activateRole(DEMO.megan, GLOBAL_ADMINISTRATOR);
    expect(unapproved.approvalId).toBeNull();

    expect((await page()).passedOver).toEqual([
      expect.stringMatching(/was activated at .* through a request not found in the part of its PIM history read: a human should look$/),
    ]);
  });
});
