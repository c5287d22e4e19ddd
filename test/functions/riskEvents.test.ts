import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { riskEvents } from '../../functions/riskEvents';
import { DEMO } from '../../sandbox/tenant';
import { type EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';

/** Risky users are disabled; an anonymous sign-in ends the user's sessions. Enrichment reads each user's own risk. */
const POLICY = `version: 1
mode: enforce
protected: { users: [breakglass1@contoso.com] }
rules:
  - { id: risky-users, when: { source: [risk], entity: account, userRisk: [high] }, then: [disableUser] }
  - { id: anonymous-sign-in, when: { source: [risk], labels: [anonymizedIPAddress] }, then: [revokeSessions] }
`;

/** Event bodies as ID Protection's diagnostic settings stream them (test/fixtures/risk/SOURCES.md). */
const fixture = (name: string): { records: Array<Record<string, any>> } =>
  JSON.parse(readFileSync(join(__dirname, '../fixtures/risk', `${name}.json`), 'utf8')) as { records: Array<Record<string, any>> };

let engine: EngineUnderTest;
let submit: Record<string, string>;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());
beforeEach(async () => {
  engine.configure({ RESPONDER_POLICY: POLICY });
  submit = await engine.bearer(['Incidents.Submit']);
});

const post = (body: unknown, headers: Record<string, string> = submit) => call(riskEvents, 'risk-events', { body, headers });
const kinds = (record: { decision: { actions: Array<{ kind: string; target: { id?: string } }> } }) =>
  record.decision.actions.map((a) => `${a.kind} ${a.target.id}`);

describe('POST /api/risk-events', () => {
  it('decides each risky user through the policy, records and enqueues, and says what became of every record', async () => {
    engine.sandbox.tenant.setRisk(DEMO.jsmith, 'high', 'confirmedCompromised');
    const res = await post(fixture('RiskyUsers'));
    expect(res.status).toBe(202);
    expect(res.json.records.map((r: { status: string }) => r.status)).toEqual(['decided', 'decided', 'ignored']);
    expect(kinds(res.json.records[0])).toEqual([`disableUser ${DEMO.adele}`]);
    expect(kinds(res.json.records[1])).toEqual([`disableUser ${DEMO.jsmith}`]);
    expect(res.json.records[2]).toEqual({
      index: 2,
      category: 'RiskyUsers',
      status: 'ignored',
      reason: 'risk state remediated: only atRisk and confirmedCompromised ask for action',
    });
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(2);
    const entry = await engine.ledger.get(res.json.records[0].recorded[0].key);
    expect(entry).toMatchObject({
      state: 'queued',
      source: { type: 'risk', subject: `risk:user:${DEMO.adele}:atRisk:2026-11-28T09:14:03.512Z`, ruleId: 'risky-users' },
    });
  });

  it('acts once on a record delivered twice (Event Hubs delivers at least once)', async () => {
    await post(fixture('RiskyUsers'));
    const again = await post(fixture('RiskyUsers'));
    expect(again.status).toBe(202);
    expect(again.json.records[0].decision.actions).toEqual([]);
    expect(again.json.records[0].decision.skipped.map((s: { reason: string }) => s.reason)).toEqual(['already-done']);
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(1);
  });

  it('matches a detection by its type, and judges its user by the risk the directory gives them', async () => {
    const res = await post(fixture('UserRiskEvents'));
    expect(res.json.records.map((r: { status: string }) => r.status)).toEqual(['decided', 'decided', 'ignored']);
    // Adele: an anonymous sign-in, and high risk in ID Protection. John: a password spray, but no risk on record.
    expect(kinds(res.json.records[0]).sort()).toEqual([`disableUser ${DEMO.adele}`, `revokeSessions ${DEMO.adele}`]);
    expect(kinds(res.json.records[1])).toEqual([]);
  });

  it('never acts on a protected account, whatever the record calls it: the directory says who it is', async () => {
    engine.sandbox.tenant.setRisk(DEMO.breakglass, 'high');
    const record = fixture('RiskyUsers').records[0] as Record<string, any>;
    const forged = { ...record, properties: { ...record.properties, id: DEMO.breakglass, userPrincipalName: 'adele.vance@contoso.com' } };
    const res = await post({ records: [forged] });
    expect(res.status).toBe(202);
    expect(res.json.records[0].decision.actions).toEqual([]);
    expect(res.json.records[0].decision.skipped).toEqual([expect.objectContaining({ kind: 'disableUser', reason: 'protected' })]);
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(0);
  });

  it("never takes a record's own risk level for the user's when ID Protection cannot be read: the action waits for it", async () => {
    // John has no risk in ID Protection; a record (forged, or ahead of the directory) says high while the read is throttled.
    engine.sandbox.faults.add({ path: /riskyUsers/, count: 100, status: 429, body: { error: { code: 'TooManyRequests', message: 'slow down' } } });
    const record = fixture('RiskyUsers').records[1] as Record<string, any>;
    const res = await post({ records: [{ ...record, properties: { ...record.properties, riskState: 'atRisk', riskLevel: 'high' } }] });
    expect(res.status).toBe(202);
    expect(res.json.records[0].decision.actions).toEqual([]);
    // It waits for ID Protection's answer, and the record is looked at again (then held for a human if it never comes).
    expect(res.json.records[0].decision.waiting).toEqual([expect.objectContaining({ kind: 'disableUser', data: ['userRisk'] })]);
    expect(res.json.records[0].decision.lookAgainAt).toEqual(expect.any(String));
    expect((engine.queue as EmbeddedQueue).stats().ready).toBe(0);
  });

  it('handles a batch with a bad record: the others are decided, the bad one is answered with the field at fault', async () => {
    const res = await post(fixture('mixed-batch'));
    expect(res.status).toBe(202);
    expect(res.json.records.map((r: { status: string }) => r.status)).toEqual(['decided', 'decided', 'invalid', 'ignored', 'ignored']);
    expect(res.json.records[2]).toEqual({
      index: 2,
      status: 'invalid',
      field: 'records[2].properties.userId',
      problem: "is required (the user's Entra object id)",
    });
  });

  it('answers 400 naming the field when nothing in the body can be read, and 403 to a caller without the relay role', async () => {
    expect(await post({ value: [] })).toMatchObject({
      status: 400,
      json: { error: { target: 'records', message: expect.stringMatching(/^records: is required/) } },
    });
    const bad = fixture('mixed-batch').records[2];
    expect(await post({ records: [bad] })).toMatchObject({ status: 400, json: { error: { target: 'records[0].properties.userId' } } });
    expect((await post(fixture('RiskyUsers'), await engine.bearer(['Responder.Read']))).status).toBe(403);
    expect((await post({ records: [] })).json).toEqual({ records: [] });
  });
});
