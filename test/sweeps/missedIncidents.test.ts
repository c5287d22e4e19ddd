import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { incidents as postIncident } from '../../functions/incidents';
import { runSweep } from '../../functions/sweeps';
import { SAMPLE_INCIDENT_ID, SAMPLE_WORKSPACE_ID, type SandboxIncident } from '../../sandbox/tenant';
import { runtime } from '../../shared/runtime';
import { SentinelReports, type SentinelIncidents } from '../../shared/clients/sentinel';
import { config } from '../../shared/config';
import { severitiesActedOn } from '../../shared/sweeps/missedIncidents';
import { Sweeps } from '../../shared/sweeps/runner';
import { SWEEP_TIMINGS } from '../../shared/sweeps/sweep';
import { compilePolicy } from '../../shared/policy/decide';
import { parsePolicy } from '../../shared/policy/load';
import { MemoryLedger } from '../../shared/ledger/memoryLedger';
import { EngineUnderTest } from '../support/engine';
import { sweepDeps } from '../support/sweeps';
import { call } from '../support/http';

/** High incidents get their accounts' sessions revoked. */
const POLICY = `version: 1
mode: enforce
rules:
  - { id: high-incidents, when: { source: [incident], severity: [High], entity: account }, then: [revokeSessions] }
`;
const WORKSPACE = SAMPLE_WORKSPACE_ID;
const OTHER_WORKSPACE = WORKSPACE.replace('law-sentinel', 'law-emea');
const armIdIn = (workspace: string, name: string) => `${workspace}/providers/Microsoft.SecurityInsights/Incidents/${name}`;
const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();

let engine: EngineUnderTest;
let act: Record<string, string>;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());
beforeEach(async () => {
  engine.configure({ RESPONDER_POLICY: POLICY, RESPONDER_SENTINEL_WORKSPACES: `${WORKSPACE},${OTHER_WORKSPACE}` });
  act = await engine.bearer(['Responder.Act']);
  // The sample incident changed an hour ago, and no relay posted it.
  sample().properties.lastModifiedTimeUtc = minutesAgo(60);
});

const sample = () => engine.sandbox.tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase()) as SandboxIncident;
const sweep = (query = '') => call(runSweep, `sweeps/missedIncidents${query}`, { headers: act, params: { name: 'missedIncidents' } });
/** An incident with Adele in it, changed `changed` minutes ago. */
function addIncident(armId: string, severity: string, changed: number, status = 'New'): SandboxIncident {
  const incident = engine.sandbox.tenant.addIncident(armId, `Incident ${armId.slice(-6)}`, severity, structuredClone(sample().entities));
  incident.properties.lastModifiedTimeUtc = minutesAgo(changed);
  incident.properties.status = status;
  return incident;
}

describe('the missedIncidents sweep', () => {
  it('submits an incident the relay never posted, as the relay would have, once', async () => {
    const run = await (await runtime()).sweeps.run('missedIncidents'); // as its timer runs it
    expect(run).toMatchObject({ sweep: 'missedIncidents', outcome: 'completed', found: 1, planned: 1, pages: 2 });
    expect(run.findings).toEqual([{ subject: SAMPLE_INCIDENT_ID.toLowerCase(), summary: expect.stringContaining('revokeSessions') }]);
    const [entry] = await engine.ledger.list({ incident: SAMPLE_INCIDENT_ID });
    expect(entry).toMatchObject({ kind: 'revokeSessions', state: 'queued', source: { type: 'incident', incidentArmId: SAMPLE_INCIDENT_ID } });
    expect(entry?.history[0]).toMatchObject({ by: 'sweep:missedIncidents' });
    expect(await engine.ledger.decisionOn(SAMPLE_INCIDENT_ID)).toMatchObject({ by: 'sweep:missedIncidents', actions: 1 });
    // Decided now: the next run passes it over.
    expect((await sweep()).json.run).toMatchObject({ found: 0, planned: 0, passedOver: 1 });
    expect(await engine.ledger.list({})).toHaveLength(1);
  });

  it('leaves alone an incident the relay posted, even one the policy planned nothing for', async () => {
    const quiet = addIncident(armIdIn(WORKSPACE, 'no-account'), 'High', 60);
    quiet.entities = [];
    const relay = await engine.bearer(['Incidents.Submit']);
    for (const incident of [sample(), quiet]) {
      const body = { object: { id: incident.id, properties: { ...incident.properties, relatedEntities: incident.entities } } };
      expect((await call(postIncident, 'incidents', { body, headers: relay })).status).toBe(202);
    }
    expect(await engine.ledger.decisionOn(quiet.id)).toMatchObject({ actions: 0 });
    const run = (await sweep()).json.run;
    expect(run).toMatchObject({ found: 0, planned: 0, passedOver: 2 });
    expect(await engine.ledger.list({})).toHaveLength(1); // the relay's one revokeSessions
  });

  it('knows an incident by its actions when its decision was not kept (the table refused the write): submitted once', async () => {
    const forgetful = new (class extends MemoryLedger {
      override async recordDecision(): Promise<void> {
        throw new Error('the table refused the write');
      }
    })();
    engine.configure({ RESPONDER_POLICY: POLICY }, { ledger: forgetful });
    const body = { object: { id: sample().id, properties: { ...sample().properties, relatedEntities: sample().entities } } };
    sample().properties.lastModifiedTimeUtc = minutesAgo(60);
    expect((await call(postIncident, 'incidents', { body, headers: await engine.bearer(['Incidents.Submit']) })).status).toBe(202);
    expect(await forgetful.decisionOn(SAMPLE_INCIDENT_ID)).toBeUndefined();
    const run = await (await runtime()).sweeps.run('missedIncidents');
    expect(run).toMatchObject({ found: 0, passedOver: 1 });
    expect(await forgetful.list({})).toHaveLength(1);
  });

  it('asks ARM only for what the policy acts on, and passes over the closed, the just changed and the long past', async () => {
    addIncident(armIdIn(WORKSPACE, 'low'), 'Low', 60);
    addIncident(armIdIn(WORKSPACE, 'closed'), 'High', 60, 'Closed');
    addIncident(armIdIn(WORKSPACE, 'just-now'), 'High', 2);
    addIncident(armIdIn(WORKSPACE, 'last-week'), 'High', 7 * 24 * 60);
    addIncident(armIdIn(OTHER_WORKSPACE, 'emea'), 'High', 90);
    const run = (await sweep()).json.run;
    expect(run).toMatchObject({ outcome: 'completed', found: 2, planned: 2, passedOver: 2, pages: 2 });
    expect(run.findings.map((f: { subject: string }) => f.subject)).toEqual([SAMPLE_INCIDENT_ID.toLowerCase(), armIdIn(OTHER_WORKSPACE, 'emea').toLowerCase()]);
    const lists = engine.sandbox.tenant.calls.filter((c) => c.method === 'GET' && /\/incidents$/i.test(c.path));
    expect(lists).toHaveLength(2);
    const filter = new URLSearchParams(lists[0]?.query).get('$filter');
    expect(filter).toMatch(/^properties\/lastModifiedTimeUtc ge \S+Z and \(properties\/severity eq 'High'\)$/);
    // 24 hours back by default.
    const since = Date.parse((filter as string).split(' ')[2] as string);
    expect(Math.abs(Date.now() - 24 * 3_600_000 - since)).toBeLessThan(60_000);
  });

  it('changes nothing in a dry run', async () => {
    const run = (await sweep('?dryRun=true')).json.run;
    expect(run).toMatchObject({ dryRun: true, found: 1, planned: 1 });
    expect(await engine.ledger.list({})).toEqual([]);
    expect(await engine.ledger.decisionOn(SAMPLE_INCIDENT_ID)).toBeUndefined();
    expect(engine.sandbox.tenant.calls.filter((c) => c.method !== 'GET' && c.method !== 'POST')).toEqual([]); // listEntities is a POST
    expect(sample().comments.size).toBe(0);
  });

  it('stops when its time runs out and the next run goes on from its place, across workspaces', async () => {
    engine.sandbox.tenant.armPageSize = 1;
    addIncident(armIdIn(WORKSPACE, 'second'), 'High', 30);
    addIncident(armIdIn(OTHER_WORKSPACE, 'third'), 'High', 30);
    const sweeps = new Sweeps(await sweepDeps({ timings: { ...SWEEP_TIMINGS, leaseMs: 60_000, budgetMs: 0 } }));
    const subjects: string[] = [];
    // A page a run: the first workspace's two pages, then the second's one.
    for (const outcome of ['paused', 'paused', 'completed']) {
      const result = await sweeps.run('missedIncidents');
      expect(result).toMatchObject({ outcome, pages: 1, found: 1, resumed: subjects.length > 0 });
      subjects.push(...result.findings.map((f) => f.subject));
    }
    expect(await sweeps.run('missedIncidents')).toMatchObject({ outcome: 'paused', found: 0, passedOver: 1, resumed: false });
    expect(subjects).toEqual([armIdIn(WORKSPACE, 'second'), SAMPLE_INCIDENT_ID, armIdIn(OTHER_WORKSPACE, 'third')].map((s) => s.toLowerCase()));
    expect(await engine.ledger.list({ kind: 'revokeSessions' })).toHaveLength(3);
  });

  it('submits nothing on the word of an answer that names another workspace, or that it cannot read', async () => {
    const listed: SentinelIncidents['incidentsPage'] = async () => ({
      incidents: [
        { id: armIdIn(OTHER_WORKSPACE, 'smuggled'), properties: { ...sample().properties } },
        { id: 'not an incident', properties: {} },
      ],
    });
    const real = new SentinelReports(config());
    const sweeps = new Sweeps({
      ...(await sweepDeps()),
      workspaces: [config().workspaces[0]!],
      incidents: async () => Object.assign(Object.create(real) as SentinelIncidents, { incidentsPage: listed }),
    });
    const run = await sweeps.run('missedIncidents');
    expect(run).toMatchObject({ outcome: 'completed', found: 0, passedOver: 2 });
    expect(await engine.ledger.list({})).toEqual([]);
  });

  it("follows no next link that leaves the workspace's incidents, even on ARM's own origin (attack)", async () => {
    // A kept place (or an answer) whose link lists another workspace: its pages would stand in for this one's.
    const link = new URL(`${OTHER_WORKSPACE}/providers/Microsoft.SecurityInsights/incidents`, config().endpoints.arm);
    link.searchParams.set('api-version', '2024-03-01');
    link.searchParams.set('$filter', `properties/lastModifiedTimeUtc ge ${minutesAgo(24 * 60)}`);
    const foreign = link.toString();
    const { shared } = await runtime();
    await shared.update('sweep:missedIncidents', () => ({ next: { cursor: JSON.stringify({ workspace: 0, next: foreign }) }, result: undefined }));
    const otherListed = () =>
      engine.sandbox.tenant.calls.filter((c) => c.method === 'GET' && c.path.toLowerCase().startsWith(OTHER_WORKSPACE.toLowerCase())).length;
    await expect((await runtime()).sweeps.run('missedIncidents')).rejects.toMatchObject({ code: 'ForeignNextLink' });
    expect(otherListed()).toBe(0);
    // The place is dropped: the next run starts at the top, and finds the sample incident.
    expect(await (await runtime()).sweeps.run('missedIncidents')).toMatchObject({ outcome: 'completed', found: 1, resumed: false });
  });

  it('says why it did nothing when no workspace is set or no rule acts on incidents', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY, RESPONDER_SENTINEL_WORKSPACES: '' });
    act = await engine.bearer(['Responder.Act']);
    expect((await sweep()).json.run).toMatchObject({ outcome: 'completed', found: 0, passedOver: 1, pages: 1 });
    expect(engine.sandbox.tenant.calls.filter((c) => /\/incidents$/i.test(c.path))).toEqual([]);
    expect(severitiesActedOn(policyOf('{ source: [risk], entity: account }'))).toBeUndefined();
    expect(severitiesActedOn(policyOf('{ tactics: [Execution], entity: account }'))).toEqual([]);
  });
});

const policyOf = (when: string) => compilePolicy(parsePolicy(`version: 1\nmode: enforce\nrules:\n  - { id: r, when: ${when}, then: [disableUser] }\n`, 'test'));
