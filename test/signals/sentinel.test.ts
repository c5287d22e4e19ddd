import { describe, expect, it } from 'vitest';
import { InputError } from '../../shared/errors';
import { normalizeSentinelPayload } from '../../shared/signals/sentinel';
import type { AccountEntity, HostEntity } from '../../shared/signals/signal';
import { buildIncident, sampleAlert, sampleIncident } from '../fixtures/incidents';

const inputError = (fn: () => unknown): InputError => {
  try {
    fn();
  } catch (error) {
    if (error instanceof InputError) return error;
    throw error;
  }
  throw new Error('expected an InputError');
};

/** Rewrites every key of a JSON value with `f`: for casing variants. */
const rekey = (value: unknown, f: (k: string) => string): unknown =>
  Array.isArray(value)
    ? value.map((v) => rekey(v, f))
    : value && typeof value === 'object'
      ? Object.fromEntries(Object.entries(value).map(([k, v]) => [f(k), rekey(v, f)]))
      : value;

describe('incident trigger body', () => {
  it('normalizes the automation rule payload into a signal', () => {
    const signal = normalizeSentinelPayload(sampleIncident());
    expect(signal.source).toBe('incident');
    expect(signal.subject).toBe(signal.incident?.armId.toLowerCase());
    expect(signal.incident).toMatchObject({
      name: '73e01a99-5cd7-4139-a149-9f2736ff2ab5',
      number: 3177,
      resourceGroup: 'rg-siem',
      workspaceName: 'law-sentinel',
      eventType: 'Create',
    });
    expect(signal.severity).toBe('High');
    expect(signal.tactics).toEqual(['CredentialAccess', 'Execution']);
    expect(signal.techniques).toEqual(['T1003']);
    expect(signal.products).toEqual(['Microsoft Defender Advanced Threat Protection']);
    expect(signal.labels).toEqual(['auto-remediate']);
    const [account, host, ip] = signal.entities as [AccountEntity, HostEntity, unknown];
    expect(account).toEqual({
      kind: 'account',
      aadUserId: '6e7b768e-07e2-4810-8459-485f84f8f204',
      upn: 'adele.vance@contoso.com',
      accountName: 'adele.vance',
      upnSuffix: 'contoso.com',
      displayName: 'Adele Vance',
      aadTenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47',
    });
    expect(host).toMatchObject({ kind: 'host', mdatpDeviceId: '0c1d9e3bbaf6b2c7e8f9a0b1c2d3e4f5a6b7c8d9', fqdn: 'wks-042.contoso.com', deviceRisk: 'High' });
    expect(ip).toMatchObject({ kind: 'other', sourceKind: 'ip', value: '203.0.113.7' });
  });

  it('gives create and update deliveries of one incident the same subject', () => {
    const create = sampleIncident();
    const update = sampleIncident();
    update.objectEventType = 'Update';
    update.object.id = update.object.id.toUpperCase().replace('/SUBSCRIPTIONS/', '/subscriptions/');
    expect(normalizeSentinelPayload(update).subject).toBe(normalizeSentinelPayload(create).subject);
    expect(normalizeSentinelPayload(update).incident?.eventType).toBe('Update');
  });

  it('reads PascalCase and camelCase keys alike', () => {
    const camel = normalizeSentinelPayload(sampleIncident());
    const pascal = normalizeSentinelPayload(rekey(sampleIncident(), (k) => k.charAt(0).toUpperCase() + k.slice(1)));
    const upper = normalizeSentinelPayload(rekey(sampleIncident(), (k) => k.toUpperCase()));
    // Unknown-kind properties are carried verbatim, keys as sent; everything interpreted must be identical.
    const interpreted = (s: typeof camel) => ({ ...s, entities: s.entities.map((e) => (e.kind === 'other' ? { ...e, properties: {} } : e)) });
    expect(interpreted(pascal)).toEqual(interpreted(camel));
    expect(interpreted(upper)).toEqual(interpreted(camel));
  });

  it('accepts a bare ARM incident (incidents.get output)', () => {
    const arm = sampleIncident().object;
    const signal = normalizeSentinelPayload(arm);
    expect(signal.source).toBe('incident');
    expect(signal.entities).toHaveLength(3);
    expect(signal.incident?.eventType).toBeUndefined();
  });

  it('tolerates a missing relatedEntities and says so', () => {
    const body = sampleIncident();
    delete body.object.properties.relatedEntities;
    const signal = normalizeSentinelPayload(body);
    expect(signal.entities).toEqual([]);
    expect(signal.notes.join(' ')).toMatch(/no relatedEntities/);
  });

  it('carries unknown entity kinds instead of failing', () => {
    const body = sampleIncident();
    body.object.properties.relatedEntities.push({ kind: 'HoloDeck', properties: { friendlyName: 'deck 9', warp: 7 } });
    const signal = normalizeSentinelPayload(body);
    expect(signal.entities.at(-1)).toEqual({ kind: 'other', sourceKind: 'holodeck', value: 'deck 9', properties: { friendlyName: 'deck 9', warp: 7 } });
  });

  it('collects tactics and products from embedded alerts and merges repeated entities', () => {
    const body = buildIncident({ accounts: 2, hosts: 1, alerts: 3 });
    body.object.properties.relatedEntities.push(body.object.properties.relatedEntities[0]);
    const signal = normalizeSentinelPayload(body);
    expect(signal.entities.filter((e) => e.kind === 'account')).toHaveLength(2);
    expect(signal.tactics).toEqual(['CredentialAccess', 'Execution']);
  });

  it.each([5, 8, 9, 30])('merges repeated mentions in a list of %i entities', (size) => {
    const id = '6e7b768e-07e2-4810-8459-485f84f8f204';
    const mentions = [
      { kind: 'Account', properties: { aadUserId: id, accountName: 'adele' } },
      // An Entra device id equal to the user's object id: another entity, not a mention of the user.
      { kind: 'Host', properties: { hostName: 'wks-7', additionalData: { AadDeviceId: id } } },
      { kind: 'Account', properties: { aadUserId: id.toUpperCase(), accountName: 'adele', upnSuffix: 'contoso.com', friendlyName: 'Adele' } },
      { kind: 'Ip', properties: { address: '10.0.0.7' } },
      { kind: 'Ip', properties: { address: '10.0.0.7' } },
    ];
    const others = Array.from({ length: size - mentions.length }, (_, i) => ({ kind: 'Host', properties: { hostName: `srv-${i}`, dnsDomain: 'contoso.com' } }));
    const body = sampleIncident();
    body.object.properties.relatedEntities = [...mentions, ...others];
    const entities = normalizeSentinelPayload(body).entities;
    expect(entities).toHaveLength(3 + others.length);
    // The first mention's fields win; the later one fills the gaps.
    expect(entities[0]).toEqual({
      kind: 'account',
      aadUserId: id,
      accountName: 'adele',
      upn: 'adele@contoso.com',
      upnSuffix: 'contoso.com',
      displayName: 'Adele',
    });
    expect(entities[1]).toEqual({ kind: 'host', aadDeviceId: id, hostName: 'wks-7' });
    expect(entities[2]).toMatchObject({ kind: 'other', sourceKind: 'ip', value: '10.0.0.7' });
  });

  it('normalizes a 200-entity, 50-alert incident', () => {
    const signal = normalizeSentinelPayload(buildIncident({ accounts: 100, hosts: 60, others: 40, alerts: 50 }));
    expect(signal.entities).toHaveLength(200);
    expect(signal.entities.filter((e) => e.kind === 'host').every((h) => (h as HostEntity).mdatpDeviceId?.length === 40)).toBe(true);
  });

  it('notes an account with no identifier at all', () => {
    const body = sampleIncident();
    body.object.properties.relatedEntities = [{ kind: 'Account', properties: { friendlyName: 'someone' } }];
    expect(normalizeSentinelPayload(body).notes.join(' ')).toMatch(/without a usable identifier/);
  });

  it.each([
    ['a non-object body', [], '', /expected a JSON object/],
    ['an unrecognized shape', { hello: 'world' }, '', /not a Sentinel incident or alert/],
    ['a non-incident schema type', { objectSchemaType: 'Alert', object: {} }, 'objectSchemaType', /expected "Incident"/],
    ['a missing incident id', { object: { properties: { severity: 'High' } } }, 'object.id', /is required/],
    ['a malformed incident id', { object: { id: '/subscriptions/x/../../etc', properties: { severity: 'High' } } }, 'object.id', /incident ARM id/],
  ])('rejects %s with a precise path', (_name, body, path, message) => {
    const error = inputError(() => normalizeSentinelPayload(body));
    expect(error.path).toBe(path);
    expect(error.message).toMatch(message);
  });

  it.each([
    ['an alert that is not an object', (p: Record<string, any>) => (p.alerts = [{}, 'alert']), 'alerts[1]', /expected an object, got the string/],
    ['nested alert properties that are not an object', (p: Record<string, any>) => (p.alerts = [{ properties: [] }]), 'alerts[0].properties', /an array/],
    [
      "a nested alert's tactic that is not a string",
      (p: Record<string, any>) => (p.alerts = [{ properties: { tactics: ['Execution', 7] } }]),
      'alerts[0].properties.tactics[1]',
      /expected a string, got number 7/,
    ],
    ["an inline alert's product that is an object", (p: Record<string, any>) => (p.alerts = [{ productName: {} }]), 'alerts[0].productName', /an object/],
    ['a label that is a number', (p: Record<string, any>) => (p.labels = ['ok', 3]), 'labels[1]', /expected an object, got number 3/],
    ["a label's name that is an array", (p: Record<string, any>) => (p.labels = [{ labelName: [] }]), 'labels[0].labelName', /an array/],
    ['additionalData that is a string', (p: Record<string, any>) => (p.additionalData = 'x'), 'additionalData', /the string "x"/],
  ])('names the path of %s, in either incident shape', (_name, spoil, path, message) => {
    const body = sampleIncident();
    spoil(body.object.properties);
    const inTriggerBody = inputError(() => normalizeSentinelPayload(body));
    expect(inTriggerBody.path).toBe(`object.properties.${path}`);
    expect(inTriggerBody.message).toMatch(message);
    expect(inputError(() => normalizeSentinelPayload(body.object)).path).toBe(`properties.${path}`);
  });

  it('rejects a bad severity and a non-array entity list with their paths; keeps an entity with a bad id, marked, and leaves out one without a kind', () => {
    const severity = sampleIncident();
    severity.object.properties.severity = 'Critical';
    expect(inputError(() => normalizeSentinelPayload(severity)).message).toBe(
      'object.properties.severity: expected one of Informational, Low, Medium, High, got "Critical"',
    );

    // One entity's bad id (endpoint data an attacker may shape) must not stop the incident's other containment, nor
    // drop the entity: its other identifiers still name it, and it is marked so that its actions are held.
    const badId = sampleIncident();
    badId.object.properties.relatedEntities[0].properties.aadUserId = 'not-a-guid';
    const [account] = normalizeSentinelPayload(badId).entities as [AccountEntity];
    expect(account).toMatchObject({
      upn: 'adele.vance@contoso.com',
      malformed: 'object.properties.relatedEntities[0].properties.aadUserId: expected a GUID, got "not-a-guid"',
    });
    expect(account.aadUserId).toBeUndefined();
    // A field that identifies no one is just ignored, with a note.
    const badTenant = sampleIncident();
    badTenant.object.properties.relatedEntities[0].properties.aadTenantId = 'evil';
    const tenantSignal = normalizeSentinelPayload(badTenant);
    expect((tenantSignal.entities[0] as AccountEntity).malformed).toBeUndefined();
    expect(tenantSignal.notes).toContainEqual(expect.stringMatching(/^ignored: .*aadTenantId: expected a GUID/));

    const notArray = sampleIncident();
    notArray.object.properties.relatedEntities = { kind: 'Account' };
    expect(inputError(() => normalizeSentinelPayload(notArray)).message).toBe('object.properties.relatedEntities: expected an array, got an object');

    const noKind = sampleIncident();
    noKind.object.properties.relatedEntities = [{ properties: {} }];
    expect(normalizeSentinelPayload(noKind).notes).toContainEqual(
      expect.stringMatching(/^object\.properties\.relatedEntities\[0\] left out: object\.properties\.relatedEntities\[0\]\.kind: /),
    );
  });

  // Defender alerts put device ids in the host's additionalData: a bad one is reported where it was read.
  it.each([
    ['MdatpDeviceId', 'own', 'properties.MdatpDeviceId', /40 hexadecimal characters, got "x' or 1=1"/],
    ['MdatpDeviceId', 'additionalData', 'properties.additionalData.MdatpDeviceId', /40 hexadecimal characters, got "x' or 1=1"/],
    ['AadDeviceId', 'own', 'properties.AadDeviceId', /expected a GUID, got "x' or 1=1"/],
    ['AadDeviceId', 'additionalData', 'properties.additionalData.AadDeviceId', /expected a GUID, got "x' or 1=1"/],
  ])('names where a malformed %s was read (%s)', (field, where, path, message) => {
    const body = sampleIncident();
    const host = body.object.properties.relatedEntities[1].properties;
    delete host[field];
    host.additionalData = {};
    (where === 'own' ? host : host.additionalData)[field] = "x' or 1=1";
    const hostEntity = normalizeSentinelPayload(body).entities[1] as HostEntity;
    expect(hostEntity.malformed).toContain(`object.properties.relatedEntities[1].${path}: `);
    expect(hostEntity.malformed).toMatch(message);

    const alert = sampleAlert();
    const alertHost = alert.Entities.find((e: Record<string, unknown>) => e.Type === 'host');
    delete alertHost[field];
    alertHost.additionalData = {};
    (where === 'own' ? alertHost : alertHost.additionalData)[field] = "x' or 1=1";
    const at = `Entities[${alert.Entities.indexOf(alertHost)}]`;
    const alertEntity = normalizeSentinelPayload(alert).entities.find((e) => e.kind === 'host') as HostEntity;
    expect(alertEntity.malformed).toContain(`${at}.${path.replace('properties.', '')}: `);
  });

  it('quotes at most 40 characters of a bad value back', () => {
    const body = sampleIncident();
    const [account, host] = body.object.properties.relatedEntities;
    account.properties.aadUserId = 'x'.repeat(100_000);
    host.properties.additionalData.MdatpDeviceId = 'y'.repeat(100_000);
    body.object.properties.severity = 'z'.repeat(100_000);
    expect(inputError(() => normalizeSentinelPayload(body)).message).toBe(
      `object.properties.severity: expected one of Informational, Low, Medium, High, got "${'z'.repeat(40)}…"`,
    );
    body.object.properties.severity = 'High';
    const [first, second] = normalizeSentinelPayload(body).entities as [AccountEntity, HostEntity];
    expect(first.malformed).toBe(`object.properties.relatedEntities[0].properties.aadUserId: expected a GUID, got "${'x'.repeat(40)}…"`);
    expect(second.malformed).toMatch(/40 hexadecimal characters, got "y{40}…"$/);
  });

  it('never uses a host name that is not a DNS name to find a device', () => {
    const body = sampleIncident();
    body.object.properties.relatedEntities[1].properties = { hostName: 'evil/../name', dnsDomain: 'contoso.com' };
    const host = normalizeSentinelPayload(body).entities[1] as HostEntity;
    expect(host.fqdn).toBeUndefined();
    expect(host.hostName).toBe('evil/../name');
  });

  it('reads the forms Windows and Sentinel give names: DOMAIN\\name, rooted FQDNs, NetBIOS domains, guest UPNs', () => {
    const body = sampleIncident();
    body.object.properties.relatedEntities = [
      { kind: 'Account', properties: { accountName: 'CONTOSO\\jsmith', aadUserId: '3c5a1e8e-2f62-4d8b-9c11-7a0d3b4c5e6f' } },
      { kind: 'Account', properties: { accountName: 'partner_fabrikam.com#EXT#', upnSuffix: 'contoso.onmicrosoft.com' } },
      { kind: 'Host', properties: { hostName: 'wks-042.contoso.com.' } },
      { kind: 'Host', properties: { hostName: 'WKS-043', dnsDomain: 'CONTOSO' } },
    ];
    const [onPremises, guest, rooted, netbios] = normalizeSentinelPayload(body).entities as [AccountEntity, AccountEntity, HostEntity, HostEntity];
    expect(onPremises).toMatchObject({ accountName: 'jsmith', ntDomain: 'CONTOSO' });
    expect(guest.upn).toBe('partner_fabrikam.com#ext#@contoso.onmicrosoft.com');
    expect(rooted.fqdn).toBe('wks-042.contoso.com');
    // A domain without a dot is NetBIOS: no FQDN is made up from it.
    expect(netbios.fqdn).toBeUndefined();
    expect(netbios).toMatchObject({ hostName: 'WKS-043', dnsDomain: 'CONTOSO' });
  });
});

describe('alert trigger body', () => {
  it('normalizes a SecurityAlert record with $id/$ref entities and JSON-text fields', () => {
    const signal = normalizeSentinelPayload(sampleAlert());
    expect(signal.source).toBe('alert');
    expect(signal.subject).toBe('alert:bc1f5a62-2a4e-4f2e-8b55-4e3b1c2d9a77');
    expect(signal.tactics).toEqual(['CredentialAccess', 'LateralMovement']);
    expect(signal.techniques).toEqual(['T1003.001']);
    expect(signal.products).toEqual(['Microsoft Defender Advanced Threat Protection']);
    expect(signal.entities.map((e) => (e.kind === 'other' ? e.sourceKind : e.kind))).toEqual(['account', 'host', 'process', 'file', 'quantumentanglement']);
    expect(signal.entities[0]).toMatchObject({ aadUserId: '3c5a1e8e-2f62-4d8b-9c11-7a0d3b4c5e6f', upn: 'jsmith@contoso.com', ntDomain: 'CONTOSO' });
    expect(signal.entities[1]).toMatchObject({ fqdn: 'websrv1.contoso.com', mdatpDeviceId: '9f8e7d6c5b4a39281706f5e4d3c2b1a098765432' });
  });

  it('accepts Entities as an array as well as JSON text', () => {
    const alert = sampleAlert();
    alert.Entities = JSON.stringify(alert.Entities);
    alert.Techniques = ['T1003.001'];
    expect(normalizeSentinelPayload(alert)).toEqual(normalizeSentinelPayload(sampleAlert()));
  });

  it('rejects Entities text that is not a JSON array', () => {
    const alert = sampleAlert();
    alert.Entities = '{"oops"';
    expect(inputError(() => normalizeSentinelPayload(alert)).message).toMatch(/^Entities: invalid JSON/);
  });
});
