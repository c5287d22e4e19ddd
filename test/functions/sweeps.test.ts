import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { riskEvents } from '../../functions/riskEvents';
import { listSweeps, ON_DEMAND_BUDGET_MS, runSweep } from '../../functions/sweeps';
import { SWEEP_NAMES, SWEEPS } from '../../shared/sweeps/catalogue';
import { MemorySharedState, type SharedState } from '../../shared/coordination/sharedState';
import { DEMO } from '../../sandbox/tenant';
import { runtime } from '../../shared/runtime';
import { ApiError } from '../../shared/clients/apiError';
import { createGraphDirectory } from '../../shared/clients/graph';
import { config } from '../../shared/config';
import { levelsActedOn } from '../../shared/sweeps/riskyUsers';
import { Sweeps } from '../../shared/sweeps/runner';
import { stuckFor } from '../../shared/sweeps/stuckActions';
import { SWEEP_TIMINGS, type SweepTimings } from '../../shared/sweeps/sweep';
import { requestAction } from '../../functions/actions';
import type { LedgerEntry } from '../../shared/ledger/ledger';
import { EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import type { ActionQueue } from '../../shared/queue/queue';
import { EngineUnderTest } from '../support/engine';
import { sweepDeps } from '../support/sweeps';
import { call } from '../support/http';

/** Risky users are disabled, whether an event, a record or a sweep finds them. */
const POLICY = `version: 1
mode: enforce
rules:
  - { id: risky-users, when: { source: [risk, sweep], entity: account, userRisk: [high] }, then: [disableUser] }
`;

let engine: EngineUnderTest;
let act: Record<string, string>;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());
beforeEach(async () => {
  engine.configure({ RESPONDER_POLICY: POLICY });
  act = await engine.bearer(['Responder.Act']);
});

const sweep = (name: string, query = '') => call(runSweep, `sweeps/${name}${query}`, { headers: act, params: { name } });
/** The engine's own parts for a Sweeps of the test's making: a lease of a minute, and `timings` as given. */
const parts = async (timings: Partial<SweepTimings> = {}) => sweepDeps({ timings: { ...SWEEP_TIMINGS, leaseMs: 60_000, ...timings } });

/** The sweep's reads of ID Protection (enrichment reads it too, for every user at risk, without a level). */
const idProtectionCalls = () =>
  engine.sandbox.tenant.calls.filter(
    (c) => c.path === '/v1.0/identityProtection/riskyUsers' && decodeURIComponent((c.query ?? '').replace(/\+/g, ' ')).includes('riskLevel eq'),
  );

describe('the stuckActions sweep', () => {
  const ADELE_UPN = 'adele.vance@contoso.com';
  it('sends again what the pipeline left behind, once, and leaves alone what is on its way', async () => {
    // The relay's POST met a broker that refused the send (503), and the relay never retried: the action waits planned.
    const embedded = new EmbeddedQueue();
    let refusing = true;
    const queue: ActionQueue = {
      send: (commands) => (refusing ? Promise.reject(new Error('broker unreachable')) : embedded.send(commands)),
      schedule: (message, at) => embedded.schedule(message, at),
      receiveDeadLetters: (max) => embedded.receiveDeadLetters(max),
    };
    engine.configure({ RESPONDER_POLICY: `${POLICY}  - { id: manual, when: { source: [manual] }, then: [revokeSessions] }\n` }, { queue });
    const act = await engine.bearer(['Responder.Act']);
    const asked = await call(requestAction, 'actions', { body: { kind: 'revokeSessions', target: ADELE_UPN, reason: 'phished' }, headers: act });
    expect(asked.status).toBe(503);
    const [stuck] = await engine.ledger.list({ state: 'planned' });
    expect(stuck).toBeDefined();
    refusing = false;
    const later = (ms: number) => async () =>
      new Sweeps({ ...(await parts()), now: () => new Date(Date.now() + ms), directory: async () => createGraphDirectory(config()) });
    // Within five minutes the relay may still retry: nothing is stuck yet.
    expect(await (await later(60_000)()).run('stuckActions', { dryRun: true })).toMatchObject({ found: 0 });
    const dry = await (await later(6 * 60_000)()).run('stuckActions', { dryRun: true });
    expect(dry).toMatchObject({
      found: 1,
      planned: 1,
      findings: [{ subject: stuck?.key, summary: expect.stringMatching(/^would send again: planned since .+, never queued$/) }],
    });
    expect(embedded.stats().ready).toBe(0); // a dry run sent nothing
    const run = await (await later(6 * 60_000)()).run('stuckActions');
    expect(run).toMatchObject({ outcome: 'completed', found: 1, findings: [{ summary: expect.stringMatching(/^sent again: planned since/) }] });
    expect(embedded.stats().ready).toBe(1);
    const entry = await engine.ledger.get(stuck?.key as string);
    expect(entry).toMatchObject({ state: 'queued' });
    expect(entry?.history.at(-1)).toMatchObject({ state: 'queued', by: 'sweep:stuckActions', note: expect.stringMatching(/^sent again: planned since/) });
    // Sent, it is on its way: the next run finds nothing (queued, and nothing has had an hour to go wrong).
    expect(await (await later(7 * 60_000)()).run('stuckActions')).toMatchObject({ found: 0 });
  });

  it('tells stuck from waiting: a queued action whose deferral is due later is waiting; a running one within its lease is running', () => {
    const t = Date.parse('2026-12-05T10:00:00.000Z');
    const iso = (ms: number) => new Date(t + ms).toISOString();
    const entry = (state: string, lastAt: number, note?: string, leaseUntil?: number) =>
      ({
        state,
        updatedAt: iso(lastAt),
        history: [{ state, at: iso(lastAt), by: 'worker', ...(note && { note }) }],
        ...(leaseUntil !== undefined && { lease: { holder: 'h', until: iso(leaseUntil) } }),
      }) as unknown as LedgerEntry;
    const H = 3_600_000;
    expect(stuckFor(entry('queued', -2 * H), t, SWEEP_TIMINGS)).toMatch(/^queued since .+ with nothing due$/);
    expect(stuckFor(entry('queued', -2 * H, `paced by the engine; deferred to ${iso(30 * 60_000)}`), t, SWEEP_TIMINGS)).toBeUndefined();
    expect(stuckFor(entry('queued', -3 * H, `deferred to ${iso(-2 * H)}`), t, SWEEP_TIMINGS)).toMatch(/with nothing due/);
    expect(stuckFor(entry('running', -H, undefined, -60_000), t, SWEEP_TIMINGS)).toBeUndefined();
    expect(stuckFor(entry('running', -H, undefined, -10 * 60_000), t, SWEEP_TIMINGS)).toMatch(/^running, its lease lapsed at /);
    expect(stuckFor(entry('running', -H), t, SWEEP_TIMINGS)).toBeUndefined(); // no lease: nothing says it lapsed
    expect(stuckFor(entry('succeeded', -H), t, SWEEP_TIMINGS)).toBeUndefined();
  });
});

describe('GET /api/sweeps', () => {
  it("says each sweep's schedule, whether a run holds it, and its last runs, newest first, for a reader", async () => {
    engine.configure({ RESPONDER_POLICY: POLICY, RESPONDER_SWEEP_STUCKACTIONS: '0 0 * * * *' });
    act = await engine.bearer(['Responder.Act']);
    const read = await engine.bearer(['Responder.Read']);
    expect((await sweep('riskyUsers')).status).toBe(200);
    expect((await sweep('riskyUsers')).status).toBe(200);
    expect((await sweep('riskyUsers', '?dryRun=true')).status).toBe(503); // a dry run right after: nothing to spare, and not kept
    const res = await call(listSweeps, 'sweeps', { method: 'GET', headers: read });
    expect(res.status).toBe(200);
    const byName = Object.fromEntries(res.json.sweeps.map((s: { sweep: string }) => [s.sweep, s]));
    expect(Object.keys(byName)).toEqual(SWEEP_NAMES);
    expect(byName.riskyUsers).toMatchObject({
      schedule: '0 */30 * * * *',
      setting: 'RESPONDER_SWEEP_RISKYUSERS',
      resumes: false,
      last: { outcome: 'completed', found: 1, planned: 0, findings: [expect.objectContaining({ subject: expect.stringMatching(/^risk:user:/) })] },
      recent: [expect.objectContaining({ planned: 0 }), expect.objectContaining({ planned: 1 })],
    });
    expect(byName.riskyUsers.heldUntil).toBeUndefined();
    expect(byName.riskyUsers.recent[0].findings).toBeUndefined();
    expect(byName.stuckActions).toEqual({
      sweep: 'stuckActions',
      schedule: '0 0 * * * *',
      setting: 'RESPONDER_SWEEP_STUCKACTIONS',
      resumes: false,
      recent: [],
    });
    expect((await call(listSweeps, 'sweeps', { method: 'GET', headers: await engine.bearer([]) })).status).toBe(403);
  });

  it("keeps a sweep's record inside one Table property whatever text its findings and failures carry", async () => {
    /** Shared records as Table storage keeps them: one string property, at most 32,768 UTF-16 code units. */
    const records = new MemorySharedState();
    const tableSized: SharedState = {
      update: (key, change) =>
        records.update(key, (current) => {
          const out = change(current as never);
          if (out.next !== undefined && JSON.stringify(out.next).length > 32_768) throw new Error(`PropertyValueTooLarge: ${key}`);
          return out;
        }),
    };
    // Each run: findings whose subjects are as long as an incident's ARM id and whose summaries escape to six times their
    // length (lone surrogates, as an analyst's closing comment quoted by falsePositives may carry), then a failure.
    onTestFinished(() => {
      vi.restoreAllMocks();
    });
    vi.spyOn(SWEEPS.stuckActions, 'page').mockImplementation(async () => ({
      passedOver: [],
      findings: [
        ...Array.from({ length: 12 }, (_, i) => ({ subject: `${i}`.padEnd(384, 'x'), act: async () => ({ summary: '\ud800'.repeat(700), planned: 0 }) })),
        {
          subject: 'the last',
          act: async () => {
            throw new Error('the last finding failed');
          },
        },
      ],
    }));
    const sweeps = new Sweeps({ ...(await parts()), shared: tableSized, directory: async () => createGraphDirectory(config()) });
    for (let i = 0; i < 12; i++) await expect(sweeps.run('stuckActions')).rejects.toThrow('the last finding failed');
    const [status] = (await sweeps.status()).filter((s) => s.sweep === 'stuckActions');
    // The last run's first findings give way; its counts and the runs before it stay.
    expect(status).toMatchObject({ last: { outcome: 'failed', found: 12 } });
    expect(status?.last?.findings.length).toBeGreaterThan(0);
    expect(status?.last?.findings.length).toBeLessThan(10);
    expect(status?.recent).toHaveLength(10);
  });
});

describe('the riskyUsers sweep', () => {
  it('finds the users ID Protection still rates at high risk and decides each as a sweep signal', async () => {
    const res = await sweep('riskyUsers');
    expect(res.status).toBe(200);
    // The sandbox rates Adele high and Megan medium: the policy acts on high only, and the sweep asks for that alone.
    expect(res.json.run).toMatchObject({ sweep: 'riskyUsers', dryRun: false, outcome: 'completed', found: 1, planned: 1, pages: 1, resumed: false });
    expect(res.json.run.findings).toEqual([
      { subject: expect.stringMatching(`^risk:user:${DEMO.adele}:atRisk:`), summary: expect.stringContaining('disableUser') },
    ]);
    const [entry] = await engine.ledger.list({ kind: 'disableUser' });
    expect(entry).toMatchObject({ target: { id: DEMO.adele }, source: { type: 'sweep' }, state: 'queued' });
    expect(idProtectionCalls().map((c) => decodeURIComponent((c.query ?? '').replace(/\+/g, ' ')))).toEqual([
      expect.stringContaining("(riskState eq 'atRisk' or riskState eq 'confirmedCompromised') and (riskLevel eq 'high')"),
    ]);
    // What the sweep did is kept, for the next run and for a human.
    expect(await (await runtime()).sweeps.last('riskyUsers')).toMatchObject({ outcome: 'completed', found: 1 });
  });

  it('acts once on a risk the event stream already brought: the record and the sweep key it alike', async () => {
    const risky = engine.sandbox.tenant.riskyUsers.get(DEMO.adele);
    const record = JSON.parse(readFileSync(join(__dirname, '../fixtures/risk/RiskyUsers.json'), 'utf8')).records[0];
    record.properties.riskLastUpdatedDateTime = risky?.riskLastUpdatedDateTime;
    const submitted = await call(riskEvents, 'risk-events', { body: { records: [record] }, headers: await engine.bearer(['Incidents.Submit']) });
    expect(submitted.json.records[0].decision.actions).toHaveLength(1);
    const res = await sweep('riskyUsers');
    expect(res.json.run).toMatchObject({ found: 1, planned: 0 });
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(1);
  });

  it('changes nothing in a dry run: it plans, records nothing, and keeps no place', async () => {
    const res = await sweep('riskyUsers', '?dryRun=true');
    expect(res.json.run).toMatchObject({ dryRun: true, outcome: 'completed', found: 1, planned: 1 });
    expect(res.json.run.summary).toMatch(/^sweep riskyUsers \(dry run\) completed: 1 found in 1 page\(s\), would plan 1 action\(s\)/);
    expect(await engine.ledger.list({})).toEqual([]);
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(0);
    expect(await (await runtime()).sweeps.last('riskyUsers')).toBeUndefined();
    expect(engine.sandbox.tenant.calls.filter((c) => c.method !== 'GET')).toEqual([]);
  });

  it('never reads a dry run it was asked for as a real one: an unreadable dryRun is refused with 400, its name read in any case', async () => {
    for (const query of ['?dryRun=1', '?dryRun=yes', '?dryRun']) {
      expect(await sweep('riskyUsers', query)).toMatchObject({ status: 400, json: { error: { code: 'BadRequest', target: 'dryRun' } } });
    }
    expect((await sweep('riskyUsers', '?dryrun=TRUE')).json.run).toMatchObject({ dryRun: true, planned: 1 });
    expect(await engine.ledger.list({})).toEqual([]);
    expect((await sweep('riskyUsers', '?dryRun=false')).json.run).toMatchObject({ dryRun: false, planned: 1 });
  });

  it("reads in a dry run only what containment can spare: right after a real run's read it waits, answering 503", async () => {
    expect((await sweep('riskyUsers')).status).toBe(200); // its read spent ID Protection's one call a second
    const dry = await sweep('riskyUsers', '?dryRun=true');
    expect(dry).toMatchObject({ status: 503, json: { error: { code: 'SweepFailed', message: expect.stringContaining('kept for containment') } } });
    expect(Number(dry.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(idProtectionCalls()).toHaveLength(1); // the dry run asked ID Protection nothing
  });

  it('runs once at a time: a run started while another holds the sweep says so and does nothing', async () => {
    const { sweeps } = await runtime();
    const [first, second] = await Promise.all([sweeps.run('riskyUsers'), sweeps.run('riskyUsers')]);
    expect([first.outcome, second.outcome].sort()).toEqual(['busy', 'completed']);
    const busy = first.outcome === 'busy' ? first : second;
    expect(busy.summary).toMatch(/^sweep riskyUsers busy \(another run holds the sweep until .+\): 0 found in 0 page\(s\)/);
    expect(await engine.ledger.list({ kind: 'disableUser' })).toHaveLength(1);
  });

  it('stops when its time runs out, and the next run goes on from its place', async () => {
    engine.sandbox.tenant.graphPageSize = 1;
    engine.sandbox.tenant.setRisk(DEMO.jsmith, 'high');
    engine.sandbox.tenant.setRisk(DEMO.megan, 'high');
    // The engine's own parts, with no time for more than a page a run.
    const directory = await createGraphDirectory(config());
    const sweeps = new Sweeps({ ...(await parts({ budgetMs: 0 })), directory: async () => directory });
    const first = await sweeps.run('riskyUsers');
    expect(first).toMatchObject({ outcome: 'paused', pages: 1, found: 1, resumed: false });
    const second = await sweeps.run('riskyUsers');
    expect(second).toMatchObject({ outcome: 'paused', pages: 1, found: 1, resumed: true });
    const third = await sweeps.run('riskyUsers');
    expect(third).toMatchObject({ outcome: 'completed', pages: 1, found: 1, resumed: true });
    const targets = (await engine.ledger.list({ kind: 'disableUser' })).map((e) => e.target.id).sort();
    expect(targets).toEqual([DEMO.adele, DEMO.jsmith, DEMO.megan].sort());
    // Each page read once: each run went on from the place the one before kept, one ID Protection call a page.
    expect(idProtectionCalls()).toHaveLength(3);
    expect(new Set(idProtectionCalls().map((c) => c.query)).size).toBe(3);
  });

  it('resumes a run killed halfway from its last page once its lease lapses; until then, the sweep is taken', async () => {
    engine.sandbox.tenant.graphPageSize = 1;
    engine.sandbox.tenant.setRisk(DEMO.jsmith, 'high');
    const graph = await createGraphDirectory(config());
    let pages = 0;
    // The process dies while it reads its second page: its lease and place stay in the shared records.
    const dying = {
      riskyUsersPage: (levels: readonly string[], next?: string) => (++pages === 2 ? new Promise<never>(() => undefined) : graph.riskyUsersPage(levels, next)),
    };
    let now = Date.now();
    const engineParts = { ...(await parts()), now: () => new Date(now) };
    void new Sweeps({ ...engineParts, directory: async () => dying as unknown as typeof graph }).run('riskyUsers');
    await vi.waitUntil(() => pages === 2, { timeout: 10_000, interval: 10 });
    const next = new Sweeps({ ...engineParts, directory: async () => graph });
    expect(await next.run('riskyUsers')).toMatchObject({ outcome: 'busy', found: 0 });
    now += 60_001; // the dead run's lease lapses
    expect(await next.run('riskyUsers')).toMatchObject({ outcome: 'completed', resumed: true, found: 1, pages: 1 });
    expect((await engine.ledger.list({ kind: 'disableUser' })).map((e) => e.target.id).sort()).toEqual([DEMO.adele, DEMO.jsmith].sort());
  });

  it('ends a run whose read fails, keeping the last page kept for the next run, which may start at once', async () => {
    engine.sandbox.tenant.graphPageSize = 1;
    engine.sandbox.tenant.setRisk(DEMO.jsmith, 'high');
    const { sweeps } = await runtime();
    const graph = await createGraphDirectory(config());
    let pages = 0;
    const failing = {
      riskyUsersPage: (levels: readonly string[], next?: string) =>
        ++pages === 2 ? Promise.reject(new Error('Graph 503')) : graph.riskyUsersPage(levels, next),
    };
    await expect(new Sweeps({ ...(await parts()), directory: async () => failing as unknown as typeof graph }).run('riskyUsers')).rejects.toThrow('Graph 503');
    expect(await sweeps.last('riskyUsers')).toMatchObject({ outcome: 'failed', found: 1, summary: expect.stringContaining('failed: Error: Graph 503') });
    expect(await sweeps.run('riskyUsers')).toMatchObject({ outcome: 'completed', resumed: true, found: 1 });
  });

  it('starts over when Graph refuses the place kept for good (a page token past its life), rather than failing there every run', async () => {
    engine.sandbox.tenant.graphPageSize = 1;
    engine.sandbox.tenant.setRisk(DEMO.jsmith, 'high');
    const graph = await createGraphDirectory(config());
    // A listing read long ago: its next link is one Graph has since stopped honouring.
    const earlier = {
      riskyUsersPage: async (levels: readonly string[], next?: string) => {
        const page = await graph.riskyUsersPage(levels, next);
        return { ...page, ...(page.next !== undefined && { next: `${page.next}&listing=earlier` }) };
      },
    };
    const expired = new ApiError('graph', 400, 'Directory_ExpiredPageToken', 'The specified page token value has expired.');
    const today = {
      riskyUsersPage: (levels: readonly string[], next?: string) =>
        next?.endsWith('&listing=earlier') ? Promise.reject(expired) : graph.riskyUsersPage(levels, next),
    };
    const paused = new Sweeps({ ...(await parts({ budgetMs: 0 })), directory: async () => earlier as unknown as typeof graph });
    expect(await paused.run('riskyUsers')).toMatchObject({ outcome: 'paused', found: 1 });
    const sweeps = new Sweeps({ ...(await parts()), directory: async () => today as unknown as typeof graph });
    await expect(sweeps.run('riskyUsers')).rejects.toThrow('page token value has expired');
    expect(await sweeps.run('riskyUsers')).toMatchObject({ outcome: 'completed', resumed: false, found: 2, pages: 2 });
    expect((await engine.ledger.list({ kind: 'disableUser' })).map((e) => e.target.id).sort()).toEqual([DEMO.adele, DEMO.jsmith].sort());
  });

  it('ends a run whose next link is one it already followed, rather than paging in a circle every run', async () => {
    const { sweeps } = await runtime();
    const graph = await createGraphDirectory(config());
    // Graph answering the very link just followed (seen of some of its collections): the same page for ever.
    const circle = `${config().endpoints.graph}/v1.0/identityProtection/riskyUsers?$skiptoken=same`;
    let reads = 0;
    const circling = {
      riskyUsersPage: async (levels: readonly string[], next?: string) => {
        reads++;
        return { ...(next === undefined ? await graph.riskyUsersPage(levels) : { users: [] }), next: circle };
      },
    };
    const run = await new Sweeps({ ...(await parts({ budgetMs: 1_000 })), directory: async () => circling as unknown as typeof graph }).run('riskyUsers');
    expect(run).toMatchObject({ outcome: 'completed', found: 1, pages: 2 });
    expect(reads).toBe(2);
    // Nothing of the circle is kept: the next run starts from the top.
    expect(await sweeps.run('riskyUsers')).toMatchObject({ outcome: 'completed', resumed: false });
  });

  it('never follows a kept place that leads away from Graph: the run refuses it, and the next starts from the top', async () => {
    const { shared, sweeps } = await runtime();
    // The place as a tampered record would hold it: another host, or Graph's name with credentials before it.
    for (const cursor of [
      'https://evil.example/v1.0/identityProtection/riskyUsers?$skiptoken=1',
      `https://user@${new URL(config().endpoints.graph).host}/v1.0/x`,
    ]) {
      await shared.update<Record<string, unknown>, void>('sweep:riskyUsers', () => ({ next: { cursor }, result: undefined }));
      await expect(sweeps.run('riskyUsers')).rejects.toThrow(/a next link that does not lead to https:\/\/127\.0\.0\.1:\d+: not followed/);
      expect(await sweeps.run('riskyUsers')).toMatchObject({ outcome: 'completed', resumed: false, found: 1 });
    }
  });

  it('keeps its last run small enough for a Table entity, and answers an HTTP caller within its wait', async () => {
    for (let i = 0; i < 30; i++) {
      const id = `c0000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
      engine.sandbox.tenant.addUser({ id, userPrincipalName: `risky${i}@contoso.com`, displayName: `Risky ${i}` });
      engine.sandbox.tenant.setRisk(id, 'high');
    }
    const res = await sweep('riskyUsers');
    expect(res.json.run).toMatchObject({ found: 31, outcome: 'completed' });
    expect(res.json.run.findings).toHaveLength(31);
    const last = await (await runtime()).sweeps.last('riskyUsers');
    expect(last?.findings).toHaveLength(10);
    expect(JSON.stringify(last).length).toBeLessThan(16_000);
    expect(ON_DEMAND_BUDGET_MS).toBeLessThan(30_000); // the CLI's wait for an answer
  });

  it('answers 404 for a sweep it does not have, 403 without the role', async () => {
    expect(await sweep('everything')).toMatchObject({ status: 404, json: { error: { code: 'NoSuchSweep' } } });
    expect((await call(runSweep, 'sweeps/riskyUsers', { headers: await engine.bearer(['Responder.Read']), params: { name: 'riskyUsers' } })).status).toBe(403);
  });

  it('asks ID Protection for the levels the policy acts on, high when no rule says', async () => {
    const { policy } = await runtime();
    expect(levelsActedOn(policy)).toEqual(['high']);
    engine.configure({
      RESPONDER_POLICY: `${POLICY}  - { id: medium, when: { userRisk: [medium] }, then: [revokeSessions] }\n  - { id: incidents-only, when: { source: [incident], userRisk: [low] }, then: [revokeSessions] }\n`,
    });
    expect(levelsActedOn((await runtime()).policy)).toEqual(['high', 'medium']);
  });
});
