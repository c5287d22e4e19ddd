import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors';
import { DEFAULT_POLICY_PATH, parsePolicy, readPolicyFile } from '../../shared/policy/load';

const problems = (yaml: string): string[] => {
  try {
    parsePolicy(yaml, 'test.yaml');
  } catch (error) {
    if (error instanceof ConfigError) return error.details;
    throw error;
  }
  throw new Error('expected the policy to be rejected');
};

describe('policy loading', () => {
  it('loads the shipped default policy', () => {
    const { policy, digest } = readPolicyFile(DEFAULT_POLICY_PATH);
    expect(policy.mode).toBe('audit');
    expect(policy.rules.map((r) => r.id)).toEqual(['compromised-identity', 'risky-admin', 'credential-theft', 'malware-on-endpoint']);
    expect(policy.rules[3]?.then).toEqual([{ kind: 'isolateDevice', params: { isolationType: 'Selective' } }]);
    expect(policy.guardrails.caps[0]).toEqual({ action: 'disableUser', max: 10, per: { text: 'PT15M', ms: 900_000 } });
    expect(digest).toMatch(/^[0-9a-f]{12}$/);
  });

  it('normalizes the case of enumerated values and fills defaults', () => {
    const { policy } = parsePolicy(
      'version: 1\nmode: Enforce\nrules:\n  - id: r1\n    when: { severity: high, userRisk: [HIGH] }\n    then: [isolatedevice]\n',
      'x',
    );
    expect(policy.mode).toBe('enforce');
    expect(policy.rules[0]?.when).toEqual({ severity: ['High'], userRisk: ['high'] });
    expect(policy.rules[0]?.then).toEqual([{ kind: 'isolateDevice', params: { isolationType: 'Full' } }]);
    expect(policy.protected).toEqual({ users: [], groups: [], devices: [], deviceTags: [] });
  });

  it.each([
    [
      'a typo in a condition',
      'version: 1\nmode: audit\nrules:\n  - id: r1\n    when: { severty: [High] }\n    then: [disableUser]\n',
      'line 5: rules[0].when: Unrecognized key: "severty"',
    ],
    [
      'an unknown action',
      'version: 1\nmode: audit\nrules:\n  - id: r1\n    then: [nukeTenant]\n',
      'rules[0].then[0]: unknown action "nukeTenant": expected one of disableUser',
    ],
    [
      'a bad isolation type',
      'version: 1\nmode: audit\nrules:\n  - id: r1\n    then: [{ isolateDevice: { isolationType: Partial } }]\n',
      'rules[0].then[0].isolateDevice.isolationType: expected one of Full, Selective, got "Partial"',
    ],
    [
      'a rollback-only action in a rule',
      'version: 1\nmode: audit\nrules:\n  - id: r1\n    then: [enableUser]\n',
      'line 5: rules[0].then[0]: unknown action "enableUser" (it only undoes an action; no rule can plan it)',
    ],
    [
      'a bad score condition',
      'version: 1\nmode: audit\nrules:\n  - id: r1\n    when: { score: "about 60" }\n    then: [disableUser]\n',
      'line 5: rules[0].when.score: expected a comparison with a number, e.g. ">= 60"',
    ],
    [
      'a duplicate rule id',
      'version: 1\nmode: audit\nrules:\n  - { id: r1, then: [disableUser] }\n  - { id: R1, then: [revokeSessions] }\n',
      'line 5: rules[1].id: duplicate rule id "R1" (also rules[0])',
    ],
    [
      'a bad cap window',
      'version: 1\nmode: audit\nguardrails:\n  caps: [{ action: disableUser, max: 3, per: 15 minutes }]\n',
      'expected an ISO 8601 duration such as PT15M',
    ],
    [
      'an unknown risk key',
      'version: 1\nmode: audit\nrisk:\n  severity: { Critical: 50 }\n',
      'risk.severity.Critical: unknown key: expected one of Informational, Low, Medium, High',
    ],
    ['points above 100', 'version: 1\nmode: audit\nrisk:\n  privileged: 150\n', 'risk.privileged: points are at most 100'],
    ['a missing mode', 'version: 1\n', 'line 1: mode: is required'],
    ['a wrong version', 'version: 2\nmode: audit\n', 'version: only version 1 exists'],
    ['a rule without actions', 'version: 1\nmode: audit\nrules:\n  - { id: r1, then: [] }\n', 'a rule must plan at least one action'],
    ['a duplicate YAML key', 'version: 1\nmode: audit\nmode: enforce\n', 'line 3: Map keys must be unique'],
    ['broken YAML', 'version: 1\nrules: [\n', 'line'],
  ])('rejects %s, naming where', (_name, yaml, expected) => {
    expect(problems(yaml).join('\n')).toContain(expected);
  });

  it('reports every problem at once', () => {
    const details = problems('version: 1\nmode: sometimes\nrules:\n  - id: "bad id!"\n    then: [disableUser]\n');
    expect(details).toHaveLength(2);
    expect(details[0]).toBe('line 2: mode: expected one of audit, enforce, got "sometimes"');
    expect(details[1]).toMatch(/^line 4: rules\[0\]\.id: rule ids are letters/);
  });

  it('says which file could not be read', () => {
    expect(() => readPolicyFile('/nonexistent/policy.yaml')).toThrow('cannot read policy file /nonexistent/policy.yaml: ENOENT');
  });
});
