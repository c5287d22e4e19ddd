import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../cli/responder';
import { readConfig } from '../shared/config';
import { diagnose } from '../shared/doctor';
import { defaultPolicy } from './fixtures/signals';
import { Sandbox } from '../sandbox/server';

let sandbox: Sandbox;
beforeAll(async () => {
  sandbox = await Sandbox.start();
  // Before any token is issued (the credential caches them): an identity missing two app roles.
  sandbox.tenant.managedIdentityRoles = sandbox.tenant.managedIdentityRoles.filter((r) => r !== 'Machine.Isolate' && r !== 'User.RevokeSessions.All');
  Object.assign(process.env, sandbox.settings());
});
afterAll(() => sandbox.close());

describe('permission preflight', () => {
  it('reads the roles in each API token and names what each enabled capability lacks', async () => {
    const diagnosis = await diagnose(readConfig(process.env), defaultPolicy());
    expect(diagnosis.apis.map((a) => `${a.api}:${a.token}`)).toEqual(['graph:ok', 'defender:ok', 'arm:ok']);
    expect(diagnosis.ok).toBe(false);
    const failing = diagnosis.capabilities.filter((c) => !c.ok);
    expect(failing).toEqual([
      { capability: 'revokeSessions', ok: false, missing: [{ api: 'graph', why: 'revoke sessions', permissions: ['User.RevokeSessions.All'] }] },
      { capability: 'isolateDevice', ok: false, missing: [{ api: 'defender', why: 'isolate devices', permissions: ['Machine.Isolate'] }] },
      { capability: 'unisolateDevice', ok: false, missing: [{ api: 'defender', why: 'release devices', permissions: ['Machine.Isolate'] }] },
    ]);
    expect(diagnosis.capabilities.map((c) => c.capability)).toEqual([
      'enrichment',
      'disableUser',
      'enableUser',
      'revokeSessions',
      'confirmCompromised',
      'requirePimReapproval',
      'restorePimAssignments',
      'isolateDevice',
      'unisolateDevice',
    ]);
  });

  it('prints the same for a human, and exits 1', async () => {
    const lines: string[] = [];
    const code = await run(['doctor'], (t) => void lines.push(t), process.env);
    expect(code).toBe(1);
    expect(lines).toContain('✗ isolateDevice — missing defender Machine.Isolate (to isolate devices)');
    expect(lines).toContain('✓ disableUser');
    expect(lines[0]).toMatch(/^graph {5}token ok, 8 app role\(s\)$/);
  });
});
