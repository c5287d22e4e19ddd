import { describe, expect, it } from 'vitest';
import { IDEMPOTENCY_KEY_PATTERN } from '../../shared/actions/idempotency';
import { capKey, decide, decideRequest } from '../../shared/policy/decide';
import { explainDecision } from '../../shared/policy/explain';
import { account, defaultPolicy, host, policy, signal } from '../fixtures/signals';

const RISK = `
risk:
  severity: { High: 40, Medium: 20, Low: 5 }
  userRisk: { high: 35, medium: 15 }
  deviceRisk: { High: 25 }
  privileged: 10
  tactics: { CredentialAccess: 10, LateralMovement: 15 }
  techniques: { T1078: 5 }
  products: { Microsoft Defender Advanced Threat Protection: 5 }
`;

describe('risk score', () => {
  it('lists every contributing factor and sums them', () => {
    const p = policy(`version: 1\nmode: enforce\n${RISK}`);
    const d = decide(
      signal({
        tactics: ['CredentialAccess', 'Execution'],
        techniques: ['T1078.004'],
        products: ['Microsoft Defender Advanced Threat Protection'],
        entities: [
          account({ userRisk: 'medium' }),
          account({ aadUserId: '11111111-1111-4111-8111-111111111111', upn: 'b@contoso.com', userRisk: 'high', privileged: true }),
          host({ deviceRisk: 'High' }),
        ],
      }),
      p,
    );
    expect(d.score.factors).toEqual([
      { factor: 'severity', value: 'High', points: 40 },
      { factor: 'tactic', value: 'CredentialAccess', points: 10 },
      { factor: 'technique', value: 'T1078.004', points: 5 },
      { factor: 'product', value: 'Microsoft Defender Advanced Threat Protection', points: 5 },
      { factor: 'userRisk', value: 'high (b@contoso.com)', points: 35 },
      { factor: 'deviceRisk', value: 'High (wks-042.contoso.com)', points: 25 },
      { factor: 'privileged', value: 'b@contoso.com', points: 10 },
    ]);
    expect(d.score.total).toBe(100); // 130, capped
  });

  it('earns nothing for unknown entity data', () => {
    const d = decide(signal({ severity: 'Low' }), policy(`version: 1\nmode: enforce\n${RISK}`));
    expect(d.score).toEqual({ total: 5, factors: [{ factor: 'severity', value: 'Low', points: 5 }] });
  });
});

const RULES = `version: 1
mode: enforce
${RISK}
rules:
  - id: identity
    when: { source: [incident, alert], entity: account, userRisk: [high], score: ">= 60" }
    then: [disableUser, revokeSessions]
  - id: creds
    when: { severity: [High], tactics: [credentialaccess] }
    then: [revokeSessions]
  - id: endpoint
    when: { products: ["Microsoft Defender Advanced Threat Protection"], entity: host, labels: [auto-remediate] }
    then: [{ isolateDevice: { isolationType: Selective } }]
    mode: audit
  - id: technique
    when: { techniques: [T1003] }
    then: [confirmCompromised]
`;

describe('rules (table)', () => {
  const p = policy(RULES);
  const cases: Array<{ name: string; input: Parameters<typeof signal>[0]; planned: string[]; matched: string[] }> = [
    {
      name: 'high risk user on a high incident',
      input: { entities: [account({ userRisk: 'high' })] },
      planned: ['disableUser', 'revokeSessions'],
      matched: ['identity'],
    },
    { name: 'score below threshold', input: { severity: 'Low', entities: [account({ userRisk: 'high' })] }, planned: [], matched: [] },
    { name: 'wrong source', input: { source: 'sweep', entities: [account({ userRisk: 'high' })] }, planned: [], matched: [] },
    { name: 'user risk unknown', input: { entities: [account()] }, planned: [], matched: [] },
    { name: 'tactic matched case-insensitively', input: { tactics: ['CredentialAccess'] }, planned: ['revokeSessions'], matched: ['creds'] },
    { name: 'sub-technique matches technique', input: { techniques: ['T1003.001'] }, planned: ['confirmCompromised'], matched: ['technique'] },
    {
      name: 'label and product with a host',
      input: { labels: ['Auto-Remediate'], products: ['Microsoft Defender Advanced Threat Protection'], entities: [host()] },
      planned: ['isolateDevice'],
      matched: ['endpoint'],
    },
    { name: 'label missing', input: { products: ['Microsoft Defender Advanced Threat Protection'], entities: [host()] }, planned: [], matched: [] },
  ];
  it.each(cases)('$name', ({ input, planned, matched }) => {
    const d = decide(signal(input), p);
    expect(d.actions.map((a) => a.kind)).toEqual(planned);
    expect(d.rules.filter((r) => r.matched).map((r) => r.ruleId)).toEqual(matched);
  });

  it('explains why each rule did or did not match', () => {
    const d = decide(signal({ entities: [account({ userRisk: 'high' })], tactics: ['CredentialAccess'] }), p);
    expect(d.rules).toEqual([
      {
        ruleId: 'identity',
        matched: true,
        mode: 'enforce',
        explanation: ['source incident', 'score 85 >= 60', '1 account(s) with userRisk high', 'has account'],
      },
      { ruleId: 'creds', matched: true, mode: 'enforce', explanation: ['severity High', 'tactic CredentialAccess'] },
      { ruleId: 'endpoint', matched: false, mode: 'audit', explanation: ['products: none of Microsoft Defender Advanced Threat Protection (has none)'] },
      { ruleId: 'technique', matched: false, mode: 'enforce', explanation: ['techniques: none of T1003 (has none)'] },
    ]);
    expect(d.skipped).toEqual([
      expect.objectContaining({ kind: 'revokeSessions', ruleId: 'creds', reason: 'duplicate', detail: 'already planned by rule identity' }),
    ]);
    expect(d.summary).toBe('score 85 | rules identity, creds | planned: disableUser adele.vance@contoso.com; revokeSessions adele.vance@contoso.com');
  });

  it('applies rule, policy and settings modes, audit winning', () => {
    const endpoint = {
      labels: ['auto-remediate'],
      products: ['Microsoft Defender Advanced Threat Protection'],
      entities: [host(), account({ userRisk: 'high' })],
    };
    expect(decide(signal(endpoint), p).actions.map((a) => `${a.kind}:${a.mode}`)).toEqual([
      'disableUser:enforce',
      'revokeSessions:enforce',
      'isolateDevice:audit',
    ]);
    expect(decide(signal(endpoint), p, { modeOverride: 'audit' }).actions.every((a) => a.mode === 'audit')).toBe(true);
    expect(decide(signal(endpoint), policy(RULES.replace('mode: enforce', 'mode: audit')), { modeOverride: 'enforce' }).mode).toBe('audit');
  });

  it('carries the isolation parameters and a reason', () => {
    const d = decide(signal({ labels: ['auto-remediate'], products: ['Microsoft Defender Advanced Threat Protection'], entities: [host()] }), p);
    expect(d.actions[0]).toMatchObject({
      kind: 'isolateDevice',
      params: { isolationType: 'Selective' },
      target: { type: 'device', id: '0c1d9e3bbaf6b2c7e8f9a0b1c2d3e4f5a6b7c8d9', fqdn: 'wks-042.contoso.com' },
    });
    expect(d.actions[0]?.reason).toMatch(/^rule endpoint: product Microsoft Defender/);
  });

  it('records a wanted action with nothing to act on as no-target', () => {
    const d = decide(signal({ tactics: ['CredentialAccess'], entities: [host()] }), p);
    expect(d.skipped).toEqual([{ kind: 'revokeSessions', ruleId: 'creds', reason: 'no-target', detail: 'the signal has no user this rule may act on' }]);
  });

  it('gives the same action on the same target the same key across deliveries, and different keys otherwise', () => {
    const a = decide(signal({ entities: [account({ userRisk: 'high' })] }), p).actions;
    const b = decide(signal({ entities: [host(), account({ userRisk: 'high', displayName: 'Adele' })], status: 'Active' }), p).actions;
    expect(b.map((x) => x.idempotencyKey)).toEqual(a.map((x) => x.idempotencyKey));
    const other = decide(signal({ subject: 'another-incident', entities: [account({ userRisk: 'high' })] }), p).actions;
    expect(other[0]?.idempotencyKey).not.toBe(a[0]?.idempotencyKey);
    expect(new Set(a.map((x) => x.idempotencyKey)).size).toBe(2);
  });
});

describe('guardrails (table)', () => {
  const GUARDED = `version: 1
mode: enforce
protected:
  users: [breakglass1@contoso.com, 99999999-9999-4999-8999-999999999999, svc-backup]
  groups: []
  devices: [dc01.contoso.com, ffffffffffffffffffffffffffffffffffffffff]
  deviceTags: []
guardrails:
  approvals:
    - { action: disableUser, when: { privileged: true }, reason: privileged account }
    - { action: isolateDevice, when: { deviceTags: [server] } }
  caps:
    - { action: disableUser, max: 2, per: PT15M }
rules:
  - { id: all-users, then: [disableUser] }
  - { id: all-hosts, then: [isolateDevice] }
`;
  const p = policy(GUARDED, ['77777777-7777-4777-8777-777777777777']);
  const cases = [
    { name: 'protected UPN', entity: account({ aadUserId: undefined, upn: 'BreakGlass1@contoso.com'.toLowerCase(), privileged: false }), reason: 'protected' },
    { name: 'protected object id', entity: account({ aadUserId: '99999999-9999-4999-8999-999999999999', privileged: false }), reason: 'protected' },
    {
      name: 'protected bare account name, as the directory says',
      entity: account({
        aadUserId: '12121212-1212-4212-8212-121212121212',
        upn: 'svc-backup@contoso.com',
        accountName: 'svc-backup',
        privileged: false,
        verified: { id: '12121212-1212-4212-8212-121212121212', upn: 'svc-backup@contoso.com', guest: false },
      }),
      reason: 'protected',
    },
    {
      // Unread, a protected name beside an id nothing lists may be a disguise: held for a human, neither acted on nor spared.
      name: 'protected bare account name beside an unlisted id, the directory unread',
      entity: account({ aadUserId: '12121212-1212-4212-8212-121212121212', upn: 'svc-backup@contoso.com', accountName: 'svc-backup', privileged: false }),
      reason: 'needs-approval',
    },
    { name: "the engine's own identity", entity: account({ aadUserId: '77777777-7777-4777-8777-777777777777', privileged: false }), reason: 'protected' },
    {
      name: 'no object id while ids are listed',
      entity: account({ aadUserId: undefined, upn: 'someone@contoso.com', privileged: false }),
      reason: 'needs-approval',
    },
    { name: 'privileged user', entity: account({ privileged: true }), reason: 'needs-approval' },
    { name: 'privilege unknown', entity: account(), reason: 'needs-approval' },
    { name: 'ordinary user', entity: account({ privileged: false }), reason: undefined },
    {
      name: 'protected device by FQDN, as Defender says',
      entity: host({
        mdatpDeviceId: '1111111111111111111111111111111111111111',
        fqdn: 'dc01.contoso.com',
        tags: [],
        verified: { id: '1111111111111111111111111111111111111111', computerDnsName: 'dc01.contoso.com', tags: [] },
      }),
      reason: 'protected',
    },
    { name: 'protected device found by its FQDN', entity: host({ mdatpDeviceId: undefined, fqdn: 'dc01.contoso.com', tags: [] }), reason: 'protected' },
    {
      name: 'protected device by short name, as Defender says',
      entity: host({
        mdatpDeviceId: '1111111111111111111111111111111111111111',
        fqdn: undefined,
        hostName: 'DC01',
        tags: [],
        verified: { id: '1111111111111111111111111111111111111111', computerDnsName: 'dc01.contoso.com', tags: [] },
      }),
      reason: 'protected',
    },
    {
      name: 'protected name beside an unlisted Defender id, Defender unread',
      entity: host({ mdatpDeviceId: '1111111111111111111111111111111111111111', fqdn: undefined, hostName: 'DC01', tags: [] }),
      reason: 'needs-approval',
    },
    {
      name: 'namesake in another domain',
      entity: host({ mdatpDeviceId: '1111111111111111111111111111111111111111', fqdn: 'dc01.fabrikam.com', tags: [] }),
      reason: undefined,
    },
    { name: 'protected device by Defender id', entity: host({ mdatpDeviceId: 'ffffffffffffffffffffffffffffffffffffffff', tags: [] }), reason: 'protected' },
    // Signals from elsewhere than the Sentinel normalizer (manual requests, risk records) may not lower-case their ids.
    { name: 'protected Defender id, upper-cased in the signal', entity: host({ mdatpDeviceId: 'F'.repeat(40), tags: [] }), reason: 'protected' },
    {
      name: 'protected UPN, mixed case in the signal',
      entity: account({ aadUserId: undefined, upn: 'BreakGlass1@Contoso.com', privileged: false }),
      reason: 'protected',
    },
    { name: 'device with no Defender id while ids are listed', entity: host({ mdatpDeviceId: undefined, tags: [] }), reason: 'needs-approval' },
    { name: 'server tag', entity: host({ tags: ['Server'] }), reason: 'needs-approval' },
    { name: 'tags unknown', entity: host(), reason: 'needs-approval' },
    { name: 'ordinary workstation', entity: host({ tags: ['workstation'] }), reason: undefined },
  ] as const;
  it.each(cases)('$name -> $reason', ({ entity, reason }) => {
    const d = decide(signal({ entities: [entity] }), p);
    // One of the two rules has nothing to act on (a user rule, a host signal or the reverse).
    const judged = d.skipped.filter((s) => s.reason !== 'no-target');
    if (reason === undefined) {
      expect(d.actions).toHaveLength(1);
      expect(judged).toEqual([]);
    } else {
      expect(d.actions).toEqual([]);
      expect(judged.map((s) => s.reason)).toEqual([reason]);
      expect(judged[0]?.idempotencyKey).toMatch(IDEMPOTENCY_KEY_PATTERN);
    }
  });

  it('reads device tags in any case, in a rule, an approval and the protected list alike', () => {
    const tagged = policy(`version: 1
mode: enforce
protected: { users: [], groups: [], devices: [], deviceTags: [Tier0] }
guardrails:
  approvals:
    - { action: isolateDevice, when: { deviceTags: [server] }, reason: server }
rules:
  - { id: vip-devices, when: { deviceTags: [VIP] }, then: [isolateDevice] }
`);
    const judge = (tags: string[]) => {
      const d = decide(signal({ entities: [host({ tags })] }), tagged);
      return [...d.actions.map((a) => a.kind), ...d.skipped.map((s) => `${s.reason}: ${s.detail}`), ...(d.rules[0]?.matched ? [] : d.rules[0]!.explanation)];
    };
    expect(judge(['vip'])).toEqual(['isolateDevice']);
    expect(judge(['Vip', 'TIER0'])).toEqual(['protected: wks-042.contoso.com carries the protected tag "TIER0"']);
    expect(judge(['SERVER', 'vIp'])).toEqual(['needs-approval: server (device tagged SERVER)']);
    expect(judge(['VIPs'])).toEqual(['no device with a tag of VIP']);
  });

  it('opens the circuit at the cap, counting the ledger and this decision', () => {
    const users = [1, 2, 3].map((i) => account({ aadUserId: `0000000${i}-0000-4000-8000-000000000000`, upn: `u${i}@contoso.com`, privileged: false }));
    const fresh = decide(signal({ entities: users }), p);
    expect(fresh.actions).toHaveLength(2);
    expect(fresh.skipped.filter((s) => s.reason !== 'no-target').map((s) => [s.reason, s.detail])).toEqual([
      ['circuit-open', 'cap reached: 2 disableUser per PT15M (2 already counted)'],
    ]);
    const cap = p.policy.guardrails.caps[0];
    const busy = decide(signal({ entities: users }), p, { capUsage: new Map([[capKey(cap!), 1]]) });
    expect(busy.actions).toHaveLength(1);
  });

  it('gives each action on a target one verdict, however many rules want it', () => {
    const twice = policy(GUARDED.replace('rules:\n', 'rules:\n  - { id: first, then: [disableUser] }\n'));
    const d = decide(signal({ entities: [account({ aadUserId: undefined, upn: 'breakglass1@contoso.com', privileged: false })] }), twice);
    expect(d.skipped.filter((s) => s.reason !== 'no-target').map((s) => [s.ruleId, s.reason, s.detail])).toEqual([
      ['first', 'protected', 'breakglass1@contoso.com is listed as protected (UPN)'],
      ['all-users', 'duplicate', 'already judged protected by rule first'],
    ]);
  });

  it('never lets a cap count a skipped action', () => {
    const users = [account({ privileged: true }), account({ aadUserId: '00000002-0000-4000-8000-000000000000', upn: 'u2@contoso.com', privileged: false })];
    expect(decide(signal({ entities: users }), p).actions).toHaveLength(1);
  });
});

describe('the default policy', () => {
  const p = defaultPolicy();
  it('is in audit mode and holds unknown privilege for approval', () => {
    const d = decide(signal({ entities: [account({ userRisk: 'high' })], tactics: ['CredentialAccess'] }), p);
    expect(d.mode).toBe('audit');
    expect(d.actions.map((a) => `${a.kind}:${a.mode}`)).toEqual(['revokeSessions:audit', 'confirmCompromised:audit']);
    expect(d.skipped.map((s) => `${s.kind}:${s.reason}`)).toEqual(['disableUser:needs-approval', 'revokeSessions:duplicate']);
    expect(d.skipped[0]?.detail).toBe('privileged account (privilege unknown)');
  });
  it('refuses the break-glass accounts', () => {
    const breakglass = { id: '99999999-9999-4999-8999-999999999999', upn: 'breakglass1@contoso.com', guest: false };
    const d = decide(
      signal({ entities: [account({ aadUserId: breakglass.id, upn: breakglass.upn, userRisk: 'high', privileged: false, verified: breakglass })] }),
      p,
    );
    expect(d.actions).toEqual([]);
    expect(new Set(d.skipped.map((s) => s.reason))).toEqual(new Set(['protected']));
  });
});

describe("a sweep's named-only label (privilegeDrift)", () => {
  const admin = account({ userRisk: 'high', privileged: true, verified: { id: account().aadUserId as string, upn: 'adele.vance@contoso.com', guest: false } });
  const drift = signal({ source: 'sweep', subject: 'privilegeDrift:x', labels: ['privilegeDrift'], tactics: ['PrivilegeEscalation'], entities: [admin] });

  it('is acted on by no rule of the default policy, whatever they say of source, risk or privilege', () => {
    const d = decide(drift, defaultPolicy());
    expect(d.actions).toEqual([]);
    expect(d.skipped.filter((s) => s.reason !== 'no-target')).toEqual([]);
    const unnamed = ['a privilegeDrift finding is acted on only by a rule that names its label'];
    expect(d.rules.map((r) => r.explanation)).toEqual([unnamed, unnamed, unnamed, unnamed]);
  });

  it('is acted on by a rule that names it, in any case', () => {
    const p = policy('version: 1\nmode: enforce\nrules:\n  - { id: drift, when: { labels: [PrivilegeDrift] }, then: [requirePimReapproval] }\n');
    expect(decide(drift, p).actions.map((a) => `${a.ruleId}:${a.kind}`)).toEqual(['drift:requirePimReapproval']);
  });

  it('means nothing on an incident: an incident labelled so is judged as any other', () => {
    const d = decide({ ...drift, source: 'incident', subject: 'incident-1' }, defaultPolicy());
    expect(d.actions.map((a) => a.kind)).toEqual(expect.arrayContaining(['requirePimReapproval']));
  });
});

describe('waiting for data unavailable for now', () => {
  const PACED = 'paced by the engine: the defender budget (100 per 60 s) is spent';
  const paced = (...data: Array<'identity' | 'userRisk' | 'privileged' | 'groups' | 'deviceRisk' | 'deviceTags'>) =>
    data.map((d) => ({ data: d, why: PACED, retryAfterMs: 40_000 }));
  const RULES = `version: 1
mode: enforce
guardrails:
  approvals: [{ action: isolateDevice, when: { deviceTags: [server] }, reason: servers need a human }]
rules:
  - { id: risky-users, when: { entity: account, userRisk: [high] }, then: [disableUser] }
  - { id: risky-hosts, when: { entity: host, deviceRisk: [High] }, then: [isolateDevice] }
`;
  const p = policy(RULES);
  const user = account({ userRisk: 'high' });
  const device = host({ tags: ['workstation'], unavailable: paced('identity', 'deviceRisk', 'deviceTags') });

  it('waits on the target whose data is unavailable for now; what the other rules and targets decide stands', () => {
    const d = decide(signal({ entities: [user, device] }), p);
    expect(d.actions.map((a) => `${a.kind}:${a.target.id}`)).toEqual([`disableUser:${user.aadUserId}`]);
    expect(d.skipped).toEqual([]);
    expect(d.waiting).toEqual([
      {
        kind: 'isolateDevice',
        target: expect.objectContaining({ type: 'device', id: device.mdatpDeviceId }),
        idempotencyKey: expect.stringMatching(IDEMPOTENCY_KEY_PATTERN),
        params: { isolationType: 'Full' },
        ruleId: 'risky-hosts',
        mode: 'enforce',
        data: ['deviceRisk'],
        why: `wks-042.contoso.com: ${PACED}`,
        retryAfterMs: 40_000,
      },
    ]);
    expect(d.rules.find((r) => r.ruleId === 'risky-hosts')).toMatchObject({
      matched: false,
      waiting: true,
      explanation: ['1 device(s) may have deviceRisk High once their data is read', 'waiting for device risk'],
    });
    expect(d.summary).toMatch(/planned: disableUser adele.vance@contoso.com \| 1 waiting for data$/);
    // Unknown for now is no "unknown for good": the notes do not say its rules cannot match.
    expect(d.notes).toEqual([]);
    expect(explainDecision(d)).toContain(
      `Waiting for data\n  isolateDevice → wks-042.contoso.com: device risk unavailable for now — wks-042.contoso.com: ${PACED} (rule risky-hosts)`,
    );
    expect(explainDecision(d)).toContain('  … risky-hosts: 1 device(s) may have deviceRisk High once their data is read, waiting for device risk');
  });

  it('does not wait for data its rules do not read', () => {
    const hostsOnly = policy(`version: 1\nmode: enforce\nrules:\n  - { id: hosts, when: { entity: host }, then: [isolateDevice] }\n`);
    const d = decide(signal({ entities: [device] }), hostsOnly);
    expect(d.actions.map((a) => a.kind)).toEqual(['isolateDevice']);
    expect(d.waiting).toEqual([]);
  });

  it('on the last look, holds what still waits for a human, with what it lacked and how often it was looked at', () => {
    const d = decide(signal({ entities: [user, device] }), p, { look: { evaluation: 5, last: true } });
    expect(d.waiting).toEqual([]);
    expect(d.actions.map((a) => a.kind)).toEqual(['disableUser']);
    expect(d.skipped).toEqual([
      expect.objectContaining({
        kind: 'isolateDevice',
        ruleId: 'risky-hosts',
        idempotencyKey: expect.stringMatching(IDEMPOTENCY_KEY_PATTERN),
        params: { isolationType: 'Full' },
        reason: 'needs-approval',
        detail: `device risk still unavailable after 5 evaluations (wks-042.contoso.com: ${PACED}): held for a human`,
      }),
    ]);
    // The held action has the key it would have had: an analyst approves that action.
    expect(d.skipped[0]?.idempotencyKey).toBe(decide(signal({ entities: [user, device] }), p).waiting[0]?.idempotencyKey);
  });

  it('treats data unknown for good (a 404, not in Defender) as it always has: the rule does not match, nothing waits', () => {
    const d = decide(signal({ entities: [user, host({ tags: ['workstation'] })] }), p);
    expect(d.waiting).toEqual([]);
    expect(d.rules.find((r) => r.ruleId === 'risky-hosts')).toMatchObject({
      matched: false,
      explanation: ['no device with deviceRisk High (1 device(s) with unknown risk or tags)'],
    });
  });

  it('waits on a guardrail whose condition reads data unavailable for now, and holds on one unknown for good', () => {
    const anyHost = policy(RULES.replace('deviceRisk: [High]', 'deviceRisk: [High, Medium, Low, None, Informational]'));
    const untagged = host({ deviceRisk: 'High', unavailable: paced('deviceTags') });
    expect(decide(signal({ entities: [untagged] }), anyHost).waiting).toEqual([expect.objectContaining({ kind: 'isolateDevice', data: ['deviceTags'] })]);
    const unknownForGood = host({ deviceRisk: 'High' });
    expect(decide(signal({ entities: [unknownForGood] }), anyHost).skipped).toEqual([
      expect.objectContaining({ kind: 'isolateDevice', reason: 'needs-approval', detail: 'servers need a human (device tags unknown)' }),
    ]);
    // A guardrail that holds whatever the data says holds now.
    const always = policy(`${RULES.replace('when: { deviceTags: [server] }, ', '')}`);
    expect(decide(signal({ entities: [host({ deviceRisk: 'High', unavailable: paced('deviceTags') })] }), always).skipped[0]).toMatchObject({
      reason: 'needs-approval',
    });
  });

  it("waits on protection's identity check when the directory's record is unavailable for now", () => {
    const byId = policy(
      `version: 1\nmode: enforce\nprotected: { users: [99999999-9999-4999-8999-999999999999] }\nrules:\n  - { id: users, when: { entity: account }, then: [revokeSessions] }\n`,
    );
    const noId = account({ aadUserId: undefined, unavailable: [{ data: 'identity', why: 'graph 503 serviceNotAvailable: down' }] });
    expect(decide(signal({ entities: [noId] }), byId).waiting).toEqual([
      expect.objectContaining({ kind: 'revokeSessions', data: ['identity'], why: 'adele.vance@contoso.com: graph 503 serviceNotAvailable: down' }),
    ]);
    const { unavailable: _now, ...forGood } = noId;
    expect(decide(signal({ entities: [forGood] }), byId).skipped[0]).toMatchObject({
      reason: 'needs-approval',
      detail: expect.stringMatching(/^cannot verify/),
    });
  });

  it('waits on a score that the unavailable data could still carry over the line, and not on one it could not', () => {
    const scored = policy(
      `version: 1\nmode: enforce\n${RISK}\nrules:\n  - { id: scored, when: { entity: account, score: ">= 60" }, then: [revokeSessions] }\n`,
    );
    // Medium (20) + CredentialAccess (10): 30 known; the device's risk could add 25, still short of 60.
    const short = decide(signal({ severity: 'Medium', tactics: ['CredentialAccess'], entities: [account(), device] }), scored);
    expect(short.waiting).toEqual([]);
    expect(short.rules[0]?.explanation).toEqual(['score 30 is not >= 60 (nor could it be once its data is read: 55 at most)']);
    // High (40): 40 known, up to 65 with the device's risk: the account's action waits for the device's data.
    const maybe = decide(signal({ entities: [account(), device] }), scored);
    expect(maybe.waiting).toEqual([
      expect.objectContaining({ kind: 'revokeSessions', target: expect.objectContaining({ type: 'user' }), data: ['deviceRisk'] }),
    ]);
    expect(maybe.rules[0]?.explanation).toContain('score 40, up to 65 once device risk is read: >= 60 cannot be told yet');
  });

  it('makes a later rule wait behind an earlier waiting rule that would take the action differently, and not one that would take it alike', () => {
    const ordered = (second: string) =>
      policy(`version: 1
mode: enforce
rules:
  - { id: first, when: { entity: host, deviceRisk: [High] }, then: [{ isolateDevice: { isolationType: Selective } }] }
  - { id: second, when: { entity: host }, then: [${second}] }
`);
    const behind = decide(signal({ entities: [device] }), ordered('isolateDevice'));
    expect(behind.actions).toEqual([]);
    expect(behind.waiting).toEqual([expect.objectContaining({ ruleId: 'first', params: { isolationType: 'Selective' } })]);
    const alike = decide(signal({ entities: [device] }), ordered('{ isolateDevice: { isolationType: Selective } }'));
    expect(alike.actions).toEqual([expect.objectContaining({ ruleId: 'second', params: { isolationType: 'Selective' } })]);
    expect(alike.waiting).toEqual([]);
  });

  it("holds an analyst's request for what it would wait for: it is not looked at again", () => {
    const guarded = policy(`version: 1\nmode: enforce\nguardrails:\n  approvals: [{ action: isolateDevice, when: { deviceTags: [server] } }]\n`);
    const d = decideRequest(
      signal({ source: 'manual', entities: [host({ unavailable: paced('deviceTags') })] }),
      { step: { kind: 'isolateDevice', params: {} }, reason: 'analyst' },
      guarded,
    );
    expect(d.skipped).toEqual([
      expect.objectContaining({
        reason: 'needs-approval',
        detail: `device tags unavailable, and this signal is not evaluated again (wks-042.contoso.com: ${PACED}): held for a human`,
      }),
    ]);
  });
});
