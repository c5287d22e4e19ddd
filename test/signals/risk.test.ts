import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../shared/errors';
import { MAX_RISK_RECORDS, normalizeRiskRecords, type RiskRecord } from '../../shared/signals/risk';
import type { Signal } from '../../shared/signals/signal';

/** Event bodies as ID Protection's diagnostic settings stream them (test/fixtures/risk/SOURCES.md names each source). */
const fixture = (name: string): { records: Array<Record<string, any>> } =>
  JSON.parse(readFileSync(join(__dirname, '../fixtures/risk', `${name}.json`), 'utf8')) as { records: Array<Record<string, any>> };

const signals = (records: RiskRecord[]): Signal[] => records.flatMap((r) => (r.status === 'signal' ? [r.signal] : []));
const one = (record: Record<string, unknown>): RiskRecord => normalizeRiskRecords({ records: [record] })[0] as RiskRecord;

describe('ID Protection risk records', () => {
  it('makes a risky user at risk, or confirmed compromised, a risk signal about them; a remediated one asks for nothing', () => {
    const records = normalizeRiskRecords(fixture('RiskyUsers'));
    expect(records.map((r) => r.status)).toEqual(['signal', 'signal', 'ignored']);
    const [atRisk, compromised] = signals(records) as [Signal, Signal];
    expect(atRisk).toMatchObject({
      source: 'risk',
      // The user and when their risk last changed (the stream's one-digit hour read as such).
      subject: 'risk:user:6e7b768e-07e2-4810-8459-485f84f8f204:atRisk:2026-11-28T09:14:03.512Z',
      severity: 'High',
      status: 'atRisk',
      products: ['Azure Active Directory Identity Protection'],
      entities: [
        { kind: 'account', aadUserId: '6e7b768e-07e2-4810-8459-485f84f8f204', upn: 'adele.vance@contoso.com', displayName: 'Adele Vance', userRisk: 'high' },
      ],
    });
    expect(compromised).toMatchObject({ status: 'confirmedCompromised', title: 'ID Protection: jsmith@contoso.com is confirmed compromised (high)' });
    expect(compromised.notes).toContain('risk detail: adminConfirmedUserCompromised');
    expect(records[2]).toMatchObject({
      status: 'ignored',
      category: 'RiskyUsers',
      reason: 'risk state remediated: only atRisk and confirmedCompromised ask for action',
    });
  });

  it("makes a detection a signal about its user, labelled with its type, without taking the detection's level for the user's", () => {
    const records = normalizeRiskRecords(fixture('UserRiskEvents'));
    const [first] = signals(records) as [Signal];
    expect(first).toMatchObject({
      source: 'risk',
      subject: 'risk:detection:de7ec71000000000000000000000000000000000000000000000000000000001:atRisk',
      severity: 'High',
      labels: ['anonymizedIPAddress'],
      entities: [{ kind: 'account', aadUserId: '6e7b768e-07e2-4810-8459-485f84f8f204', upn: 'adele.vance@contoso.com' }],
    });
    expect(first.entities[0]).not.toHaveProperty('userRisk'); // enrichment reads the user's own level
    expect(first.notes).toEqual(['detected realtime', 'from 203.0.113.77']);
  });

  it('gives the same risk change the same subject however the date is written, and a later change a new one', () => {
    const record = fixture('RiskyUsers').records[0] as Record<string, any>;
    const subject = (changed: string) => {
      const read = one({ ...record, properties: { ...record.properties, riskLastUpdatedDateTime: changed } });
      return read.status === 'signal' ? read.signal.subject : read.status;
    };
    // As the stream writes it, as Graph does (seven digits), as an ISO date with its zero.
    expect(new Set([subject('2026-11-28T9:14:03.512Z'), subject('2026-11-28T09:14:03.5120000Z'), subject('2026-11-28T09:14:03.512Z')]).size).toBe(1);
    expect(subject('2026-12-01T09:14:03.512Z')).not.toBe(subject('2026-11-28T09:14:03.512Z'));
    // Without its own date, the envelope's time (US-style, no zone: read as UTC) dates the change.
    const undated = one({ ...record, properties: { ...record.properties, riskLastUpdatedDateTime: null } });
    expect(undated).toMatchObject({ signal: { subject: 'risk:user:6e7b768e-07e2-4810-8459-485f84f8f204:atRisk:2026-11-28T09:14:03.000Z' } });
  });

  it('refuses a date that names no moment or is not written as one, rather than read it as another; a date without a zone is UTC', () => {
    const record = fixture('RiskyUsers').records[0] as Record<string, any>;
    const changed = (value: unknown) => one({ ...record, properties: { ...record.properties, riskLastUpdatedDateTime: value } });
    // A day the month does not have (Date.parse rolls it into the next month), a day alone, a number, another format.
    for (const odd of [
      '2026-02-30T09:14:03Z',
      '2026-02-29T09:14:03Z',
      '2026-04-31T09:14:03.512Z',
      '2026-11-28',
      '2026',
      '-1',
      0,
      1.5,
      'Tue, 01 Dec 2026 09:14:03 GMT',
    ])
      expect(changed(odd), String(odd)).toMatchObject({ status: 'invalid', field: 'records[0].properties.riskLastUpdatedDateTime' });
    expect(changed('2024-02-29T09:14:03.512Z')).toMatchObject({ status: 'signal' });
    // The envelope's time, US-style: 30 February is no day, and year 26 is not 1926.
    const timed = (time: string) => one({ ...record, time, properties: { ...record.properties, riskLastUpdatedDateTime: null } });
    expect(timed('2/30/2026 9:14:03 AM')).toMatchObject({ status: 'invalid', field: 'records[0].time' });
    expect(timed('1/1/0026 9:14:03 AM')).toMatchObject({ signal: { subject: expect.stringMatching(/:0026-01-01T09:14:03\.000Z$/) } });
    // Read the same on a host in another zone: the subject must not depend on where the engine runs.
    const zone = process.env.TZ;
    process.env.TZ = 'America/New_York';
    try {
      expect(changed('2026-11-28T09:14:03.512')).toMatchObject({ signal: { subject: expect.stringMatching(/:2026-11-28T09:14:03\.512Z$/) } });
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });

  it('handles a batch with a bad record: the others are read, the bad one is reported with the field at fault', () => {
    const records = normalizeRiskRecords(fixture('mixed-batch'));
    expect(records.map((r) => r.status)).toEqual(['signal', 'signal', 'invalid', 'ignored', 'ignored']);
    expect(records[2]).toEqual({ index: 2, status: 'invalid', field: 'records[2].properties.userId', problem: "is required (the user's Entra object id)" });
  });

  it('says what service principal risk gets: nothing yet, and why', () => {
    for (const name of ['RiskyServicePrincipals', 'ServicePrincipalRiskEvents']) {
      const records = normalizeRiskRecords(fixture(name));
      expect(records.length).toBeGreaterThan(0);
      for (const record of records)
        expect(record).toMatchObject({
          status: 'ignored',
          category: name,
          reason: expect.stringMatching(/^service principal risk: the engine has no action on service principals/),
        });
    }
  });

  it('ignores other categories a diagnostic setting may send to the same hub, and states it does not know', () => {
    expect(one({ category: 'SignInLogs', properties: {} })).toMatchObject({
      status: 'ignored',
      category: 'SignInLogs',
      reason: 'category "SignInLogs" is not an ID Protection risk log',
    });
    const record = fixture('RiskyUsers').records[0] as Record<string, any>;
    const future = one({ ...record, properties: { ...record.properties, riskState: 'unknownFutureValue' } });
    expect(future).toMatchObject({ status: 'ignored', reason: 'risk state unknownFutureValue: only atRisk and confirmedCompromised ask for action' });
    // A level the policy has no name for: still a signal, its user's risk unknown (rules on userRisk do not match).
    const level = one({ ...record, properties: { ...record.properties, riskLevel: 'unknownFutureValue' } });
    expect(level).toMatchObject({ status: 'signal', signal: { severity: 'Informational', entities: [{ kind: 'account' }] } });
    expect(level.status === 'signal' && level.signal.entities[0]).not.toHaveProperty('userRisk');
  });

  it('reads keys whatever their case (Log Analytics spells them in PascalCase)', () => {
    const record = fixture('RiskyUsers').records[0] as Record<string, any>;
    const pascal = Object.fromEntries(Object.entries(record.properties as Record<string, unknown>).map(([k, v]) => [k[0]?.toUpperCase() + k.slice(1), v]));
    expect(one({ Category: 'RiskyUsers', Properties: pascal })).toMatchObject({ status: 'signal', signal: { subject: expect.stringContaining('6e7b768e') } });
  });

  it('refuses hostile or odd records one by one, naming the field, and never takes a name for an identity', () => {
    const record = fixture('RiskyUsers').records[0] as Record<string, any>;
    const withProps = (changes: Record<string, unknown>) => one({ ...record, properties: { ...record.properties, ...changes } });
    expect(withProps({ id: 'adele.vance@contoso.com' })).toMatchObject({ status: 'invalid', field: 'records[0].properties.id' });
    expect(withProps({ id: { $ne: null } })).toMatchObject({
      status: 'invalid',
      field: 'records[0].properties.id',
      problem: 'expected a string, got an object',
    });
    expect(withProps({ riskState: 42 })).toMatchObject({ status: 'ignored', reason: 'risk state 42: only atRisk and confirmedCompromised ask for action' });
    expect(withProps({ riskState: ['atRisk'] })).toMatchObject({
      status: 'invalid',
      field: 'records[0].properties.riskState',
      problem: 'expected a string, got an array',
    });
    expect(withProps({ riskLastUpdatedDateTime: 'yesterday' })).toMatchObject({ status: 'invalid', field: 'records[0].properties.riskLastUpdatedDateTime' });
    expect(withProps({ riskLastUpdatedDateTime: `2026-11-28T09:14:03Z${' '.repeat(100)}x` })).toMatchObject({ status: 'invalid' });
    expect(withProps({ riskLastUpdatedDateTime: '13/40/2026 9:14:03 AM' })).toMatchObject({ status: 'invalid' });
    // A UPN that is not one is shown nowhere as one: the object id names the user.
    const odd = withProps({ userPrincipalName: 'adele\u202e@contoso.com', userDisplayName: `Adele${'\n'}Vance ${'x'.repeat(400)}` });
    expect(odd.status === 'signal' && odd.signal.entities[0]).toMatchObject({ aadUserId: '6e7b768e-07e2-4810-8459-485f84f8f204' });
    expect(odd.status === 'signal' && odd.signal.entities[0]).not.toHaveProperty('upn');
    expect(odd.status === 'signal' && odd.signal.notes.join(' ')).toMatch(/1 field\(s\) longer than their limits were cut/);
    expect(one({ ...record, properties: 'not an object' })).toMatchObject({ status: 'invalid', field: 'records[0].properties' });
    expect(one('a string' as unknown as Record<string, unknown>)).toMatchObject({ status: 'invalid', field: 'records[0]' });
    const detection = fixture('UserRiskEvents').records[0] as Record<string, any>;
    // One detection, one type: a list of them (Graph's riskEventType is a string) would be labels without a bound.
    const listed = one({ ...detection, properties: { ...detection.properties, riskEventType: Array.from({ length: 10_000 }, (_, i) => `t${i}`) } });
    expect(listed).toMatchObject({ status: 'invalid', field: 'records[0].properties.riskEventType', problem: 'expected a string, got an array' });
    expect(one({ ...detection, properties: { ...detection.properties, id: '../../etc' } })).toMatchObject({
      status: 'invalid',
      field: 'records[0].properties.id',
    });
  });

  it('refuses a body that is not { "records": [ … ] }, or holds too many, with a 400 naming the field', () => {
    expect(() => normalizeRiskRecords([])).toThrow(InputError);
    expect(() => normalizeRiskRecords({ records: {} })).toThrow(/records: expected an array of ID Protection log records, got an object/);
    expect(() => normalizeRiskRecords({ value: [] })).toThrow(/^records: is required/);
    expect(() => normalizeRiskRecords({ records: Array.from({ length: MAX_RISK_RECORDS + 1 }, () => ({})) })).toThrow(
      `records: at most ${MAX_RISK_RECORDS} records per request`,
    );
    expect(normalizeRiskRecords({ records: [] })).toEqual([]);
  });
});
