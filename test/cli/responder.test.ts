import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../cli/responder';
import { DEFAULT_POLICY_PATH } from '../../shared/policy/load';
import { ALERT_PATH, SAMPLE_INCIDENT_PATH } from '../fixtures/incidents';

async function responder(...argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await run(argv, (t) => void lines.push(t), {});
  return { code, out: lines.join('\n') };
}

const tmp = mkdtempSync(path.join(tmpdir(), 'responder-cli-'));
const file = (name: string, text: string) => {
  const p = path.join(tmp, name);
  writeFileSync(p, text);
  return p;
};

describe('responder plan', async () => {
  it('explains the decision for the sample incident', async () => {
    const { code, out } = await responder('plan', SAMPLE_INCIDENT_PATH);
    expect(code).toBe(0);
    expect(out).toContain('Credential theft followed by malware on WKS-042');
    expect(out).toContain('policy built-in default');
    expect(out).toContain('Risk score 80/100');
    expect(out).toContain('+40  severity High');
    expect(out).toContain('✓ credential-theft [audit]: source incident, severity High, tactic CredentialAccess, has account');
    expect(out).toContain('revokeSessions → adele.vance@contoso.com [audit: recorded, no write]');
    expect(out).toContain('isolateDevice → wks-042.contoso.com: needs-approval — server or critical device (device tags unknown)');
  });

  it('prints the decision as JSON, and works on alerts', async () => {
    const { code, out } = await responder('plan', ALERT_PATH, '--json');
    expect(code).toBe(0);
    const decision = JSON.parse(out);
    expect(decision).toMatchObject({ source: 'alert', severity: 'High', mode: 'audit' });
  });

  it('reads an incident file saved with a byte order mark (Windows tools write one)', async () => {
    const withBom = file('bom.json', `\ufeff${readFileSync(SAMPLE_INCIDENT_PATH, 'utf8')}`);
    const { code, out } = await responder('plan', withBom, '--json');
    expect(code).toBe(0);
    expect(JSON.parse(out).title).toBe('Credential theft followed by malware on WKS-042');
  });

  it('uses --policy', async () => {
    const policy = file('enforce.yaml', 'version: 1\nmode: enforce\nrules:\n  - { id: everyone, then: [disableUser] }\n');
    const { out } = await responder('plan', SAMPLE_INCIDENT_PATH, '--policy', policy, '--json');
    expect(JSON.parse(out).actions).toEqual([expect.objectContaining({ kind: 'disableUser', mode: 'enforce' })]);
  });

  it('exits 1 with the precise problem for bad input, 2 for a bad command line', async () => {
    expect(await responder('plan', file('bad.json', '{"object": {"id": "x"}'))).toEqual({
      code: 1,
      out: expect.stringMatching(/^error: .*bad\.json: invalid JSON/),
    });
    expect((await responder('plan', file('schema.json', '{"SystemAlertId": "a", "Severity": "Huge"}'))).out).toBe(
      'error: Severity: expected one of Informational, Low, Medium, High, got "Huge"',
    );
    expect((await responder('plan', path.join(tmp, 'missing.json'))).out).toMatch(/missing\.json: cannot read: ENOENT/);
    expect((await responder('plan')).code).toBe(2);
    expect((await responder('plan', 'x', '--frobnicate')).out).toMatch(/^error: unknown option --frobnicate/);
    expect((await responder('deploy')).code).toBe(2);
  });
});

describe('responder policy validate', async () => {
  it('summarizes a valid policy', async () => {
    const { code, out } = await responder('policy', 'validate', DEFAULT_POLICY_PATH);
    expect(code).toBe(0);
    expect(out).toMatch(/valid \(digest [0-9a-f]{12}\)/);
    expect(out).toContain('mode audit; 4 rule(s), 1 in audit mode; 2 approval guardrail(s); 4 cap(s)');
  });

  it('lists every problem with its line', async () => {
    const { code, out } = await responder(
      'policy',
      'validate',
      file(
        'broken.yaml',
        'version: 1\nmode: enforce\nrules:\n  - id: a\n    when: { severty: High }\n    then: [disableUser]\n  - { id: a, then: [isolateDevice] }\n',
      ),
    );
    expect(code).toBe(1);
    expect(out).toContain('line 5: rules[0].when: Unrecognized key: "severty"');
    expect(out).toContain('line 7: rules[1].id: duplicate rule id "a" (also rules[0])');
  });
});
