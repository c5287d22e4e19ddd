import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TokenCredential } from '@azure/identity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../cli/responder';
import { readConfig } from '../shared/config';
import { diagnose } from '../shared/doctor';
import { compilePolicy } from '../shared/policy/decide';
import { DEFAULT_POLICY_PATH, readPolicyFile } from '../shared/policy/load';
import { defaultPolicy } from './fixtures/signals';
import { Sandbox } from '../sandbox/server';

let sandbox: Sandbox;
const FULL_ROLES: string[] = [];
beforeAll(async () => {
  sandbox = await Sandbox.start();
  FULL_ROLES.push(...sandbox.tenant.managedIdentityRoles);
  // Before any token is issued (the credential caches them): an identity missing two write permissions.
  sandbox.tenant.managedIdentityRoles = FULL_ROLES.filter((r) => r !== 'Machine.Isolate' && r !== 'User.RevokeSessions.All');
  Object.assign(process.env, sandbox.settings());
});
afterAll(() => sandbox.close());

/** The default policy (top-level mode audit), switched to enforce. */
function enforcingPolicy() {
  const loaded = readPolicyFile(DEFAULT_POLICY_PATH);
  return compilePolicy({ ...loaded, policy: { ...loaded.policy, mode: 'enforce' } });
}

/** The default policy's file, switched to enforce, for the CLI's --policy. */
function enforcingPolicyFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'doctor-')), 'policy.yaml');
  const text = readFileSync(DEFAULT_POLICY_PATH, 'utf8');
  expect(text).toMatch(/^mode: audit$/m);
  writeFileSync(file, text.replace(/^mode: audit$/m, 'mode: enforce'));
  return file;
}

const CAPABILITIES = [
  'enrichment',
  'disableUser',
  'enableUser',
  'revokeSessions',
  'confirmCompromised',
  'requirePimReapproval',
  'restorePimAssignments',
  'isolateDevice',
  'unisolateDevice',
];

describe('permission preflight in enforce mode', () => {
  it('reads the roles in each API token and names what each enabled capability lacks', async () => {
    const diagnosis = await diagnose(readConfig(process.env), enforcingPolicy());
    expect(diagnosis.apis.map((a) => `${a.api}:${a.token}`)).toEqual(['graph:ok', 'defender:ok', 'arm:ok']);
    expect(diagnosis.mode).toBe('enforce');
    expect(diagnosis.ok).toBe(false);
    const failing = diagnosis.capabilities.filter((c) => !c.ok);
    expect(failing).toEqual([
      {
        capability: 'revokeSessions',
        ok: false,
        missing: [{ api: 'graph', why: 'revoke sessions', permissions: ['User.RevokeSessions.All'] }],
        toEnforce: [],
      },
      { capability: 'isolateDevice', ok: false, missing: [{ api: 'defender', why: 'isolate devices', permissions: ['Machine.Isolate'] }], toEnforce: [] },
      { capability: 'unisolateDevice', ok: false, missing: [{ api: 'defender', why: 'release devices', permissions: ['Machine.Isolate'] }], toEnforce: [] },
    ]);
    expect(diagnosis.capabilities.map((c) => c.capability)).toEqual(CAPABILITIES);
  });

  it('prints the same for a human, and exits 1', async () => {
    const lines: string[] = [];
    const code = await run(['doctor', '--policy', enforcingPolicyFile()], (t) => void lines.push(t), process.env);
    expect(code).toBe(1);
    expect(lines).toContain('mode      enforce');
    expect(lines).toContain('✗ isolateDevice — missing defender Machine.Isolate (to isolate devices)');
    expect(lines).toContain('✓ disableUser');
    expect(lines[0]).toMatch(/^graph {5}token ok, 8 app role\(s\)$/);
  });
});

describe('permission preflight in audit mode', () => {
  it('does not fail on a missing write in audit mode: it names it as needed to enforce', async () => {
    const diagnosis = await diagnose(readConfig(process.env), defaultPolicy());
    expect(diagnosis.mode).toBe('audit');
    expect(diagnosis.ok).toBe(true);
    expect(diagnosis.capabilities.every((c) => c.ok && c.missing.length === 0)).toBe(true);
    expect(diagnosis.capabilities.filter((c) => c.toEnforce.length > 0)).toEqual([
      { capability: 'revokeSessions', ok: true, missing: [], toEnforce: [{ api: 'graph', why: 'revoke sessions', permissions: ['User.RevokeSessions.All'] }] },
      { capability: 'isolateDevice', ok: true, missing: [], toEnforce: [{ api: 'defender', why: 'isolate devices', permissions: ['Machine.Isolate'] }] },
      { capability: 'unisolateDevice', ok: true, missing: [], toEnforce: [{ api: 'defender', why: 'release devices', permissions: ['Machine.Isolate'] }] },
    ]);
  });

  it('is audit mode when RESPONDER_MODE=audit, whatever the policy says', async () => {
    const diagnosis = await diagnose(readConfig({ ...process.env, RESPONDER_MODE: 'audit' }), enforcingPolicy());
    expect(diagnosis).toMatchObject({ mode: 'audit', ok: true });
  });

  it('prints what is needed to enforce apart from what is missing, and exits 0', async () => {
    const lines: string[] = [];
    const code = await run(['doctor'], (t) => void lines.push(t), process.env);
    expect(code).toBe(0);
    expect(lines).toContain('mode      audit: the engine calls read permissions only; ○ marks what it needs to enforce');
    expect(lines).toContain('○ isolateDevice — to enforce, needs defender Machine.Isolate (to isolate devices)');
    expect(lines).toContain('✓ disableUser');
    expect(lines.filter((l) => l.startsWith('✗'))).toEqual([]);
  });

  it('fails on a missing read, which audit mode calls too', async () => {
    // Another identity, whose tokens carry these roles.
    const roles = FULL_ROLES.filter((r) => r !== 'Machine.Read.All' && r !== 'Machine.Isolate');
    const identity: TokenCredential = {
      getToken: async (scopes) => ({ token: await sandbox.identityToken([scopes].flat()[0]!, roles), expiresOnTimestamp: Date.now() + 3_600_000 }),
    };
    const diagnosis = await diagnose(readConfig(process.env), defaultPolicy(), identity);
    expect(diagnosis).toMatchObject({ mode: 'audit', ok: false });
    expect(diagnosis.capabilities.find((c) => c.capability === 'isolateDevice')).toEqual({
      capability: 'isolateDevice',
      ok: false,
      missing: [{ api: 'defender', why: 'read devices and their machine actions', permissions: ['Machine.Read.All'] }],
      toEnforce: [{ api: 'defender', why: 'isolate devices', permissions: ['Machine.Isolate'] }],
    });
  });
});
