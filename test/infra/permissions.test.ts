import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ACTION_PERMISSIONS, enrichmentPermissions } from '../../shared/actions/permissions';
import { declaration, INFRA, infraFiles, parseBicep, resources, valueAt, valueOf, type BicepFile } from './bicep';
import { codeOf, literal } from './bicepRead';
import { grantsFor, permissionsDocument, permissionsJsonText, readPermissionsJson, writePermissionsJson } from './permissionGrants';

const SCRIPT = join(INFRA, 'scripts/grant-permissions.sh');
const ALL = Object.keys(permissionsDocument().capabilities);

describe('infra/permissions.json, the one list of application permissions the deployment grants', () => {
  beforeAll(async () => {
    if (process.env.RESPONDER_WRITE_PERMISSIONS_JSON === '1') await writePermissionsJson();
  });

  it('is what shared/actions/permissions.ts yields (regenerate with RESPONDER_WRITE_PERMISSIONS_JSON=1)', async () => {
    expect(readPermissionsJson()).toBe(await permissionsJsonText());
  });

  it('grants the least privileged alternative of every requirement, and nothing that is not one', () => {
    const requirements = [...Object.values(ACTION_PERMISSIONS).flat(), ...enrichmentPermissions(true)];
    const least = (need: 'read' | 'write' | 'any') =>
      new Set(requirements.filter((r) => need === 'any' || r.need === need).flatMap((r) => (r.anyOf[0] ?? []).map((p) => `${r.api} ${p}`)));
    const listed = (grants: Record<'graph' | 'defender', string[]>) =>
      [...grants.graph.map((p) => `graph ${p}`), ...grants.defender.map((p) => `defender ${p}`)].sort();
    expect(listed(grantsFor(ALL, 'enforce'))).toEqual([...least('any')].sort());
    // Audit mode: the reads, and not one write.
    expect(listed(grantsFor(ALL, 'audit'))).toEqual([...least('read')].sort());
    const writes = [...least('write')].filter((p) => !least('read').has(p));
    expect(writes.filter((p) => listed(grantsFor(ALL, 'audit')).includes(p))).toEqual([]);
    expect(writes.sort()).toEqual([
      'defender Machine.Isolate',
      'graph IdentityRiskyUser.ReadWrite.All',
      'graph RoleAssignmentSchedule.ReadWrite.Directory',
      'graph RoleEligibilitySchedule.ReadWrite.Directory',
      'graph User.EnableDisableAccount.All',
      'graph User.RevokeSessions.All',
    ]);
  });

  it('lists per capability its read and its write permissions apart, for each API', () => {
    const { capabilities } = permissionsDocument();
    expect(capabilities.disableUser).toMatchObject({
      read: { graph: ['User.Read.All'], defender: [] },
      write: { graph: ['User.EnableDisableAccount.All'], defender: [] },
    });
    expect(capabilities.requirePimReapproval).toMatchObject({
      read: { graph: ['RoleAssignmentSchedule.Read.Directory', 'RoleManagementPolicy.Read.Directory', 'User.Read.All'] },
      write: { graph: ['RoleAssignmentSchedule.ReadWrite.Directory', 'RoleEligibilitySchedule.ReadWrite.Directory'] },
    });
    expect(capabilities.isolateDevice).toMatchObject({ read: { defender: ['Machine.Read.All'] }, write: { defender: ['Machine.Isolate'] } });
    for (const name of ['enrichment', 'groupMembership']) expect(capabilities[name]?.write).toEqual({ graph: [], defender: [] });
  });

  it('gives each plannable action the permissions of its rollback too', () => {
    const { capabilities } = permissionsDocument();
    expect(capabilities.disableUser?.covers).toEqual(['disableUser', 'enableUser']);
    expect(capabilities.isolateDevice?.covers).toEqual(['isolateDevice', 'unisolateDevice']);
    expect(capabilities.requirePimReapproval?.covers).toEqual(['requirePimReapproval', 'restorePimAssignments']);
    expect(capabilities.groupMembership?.read.graph).toEqual(['GroupMember.Read.All']);
  });
});

describe('infra/modules/entra.bicep grants exactly what permissions.json lists for the enabled capabilities', () => {
  let entra: BicepFile;
  beforeAll(async () => {
    entra = await parseBicep(readFileSync(join(INFRA, 'modules/entra.bicep'), 'utf8'), 'infra/modules/entra.bicep');
  });

  it('offers every capability, and enables all of them unless told otherwise', () => {
    const param = declaration(entra, 'param', 'capabilities');
    const allowed = param.decorators.get('allowed')?.[0];
    expect(allowed && literal(allowed)).toEqual(ALL);
    expect(literal(valueOf(param))).toEqual(ALL);
  });

  it('reads the permissions from permissions.json and grants them in two loops, one per API, each permission once', () => {
    expect(valueOf(declaration(entra, 'var', 'catalogue')).text).toBe("loadJsonContent('../permissions.json')");
    const grants = resources(entra).filter((r) => r.type === 'Microsoft.Graph/appRoleAssignedTo');
    expect(grants.map((g) => g.symbol)).toEqual(['graphGrant', 'defenderGrant']);
    // defender is read only when defenderPermissions is not empty (existing = if): its grants say so with `!` (BCP318).
    for (const [grant, api, list] of [
      [grants[0], 'graph', 'graphPermissions'],
      [grants[1], 'defender!', 'defenderPermissions'],
    ] as const) {
      const loop = grant!.body.parent;
      expect(loop?.type).toBe('for_statement');
      expect(loop?.namedChildren[1]?.text).toBe(list);
      expect(valueAt(grant!.body, 'principalId')?.text).toBe('enginePrincipalId');
      expect(valueAt(grant!.body, 'resourceId')?.text).toBe(`${api}.id`);
      expect(valueAt(grant!.body, 'appRoleId')?.text).toContain(`${api}.appRoles`);
    }
    // Each list is the union (no duplicates) of the enabled capabilities' lists for its API: reads, and writes.
    const variable = (name: string) => valueOf(declaration(entra, 'var', name)).text;
    for (const api of ['graph', 'defender'])
      for (const need of ['read', 'write'])
        expect(variable(`${api}${need === 'read' ? 'Reads' : 'Writes'}`)).toMatch(
          new RegExp(`^reduce\\(map\\(enabled, (\\w+) => \\1\\.value\\.${need}\\.${api}\\), \\[\\], .*union`),
        );
    expect(valueOf(declaration(entra, 'var', 'enabled')).text).toMatch(/filter\(items\(catalogue\.capabilities\), .*contains\(capabilities, /);
  });

  it('grants the reads always, and the writes only to an engine that may write (false unless told)', () => {
    const param = declaration(entra, 'param', 'engineMayWrite');
    expect(literal(valueOf(param))).toBe(false);
    const variable = (name: string) => valueOf(declaration(entra, 'var', name)).text;
    expect(variable('graphPermissions')).toBe('union(graphReads, engineMayWrite ? graphWrites : [])');
    expect(variable('defenderPermissions')).toBe('defenderForEndpoint ? union(defenderReads, engineMayWrite ? defenderWrites : []) : []');
    // What it withheld is an output, so a deployment in audit mode says what enforcing will grant.
    const withheld = valueOf(declaration(entra, 'output', 'withheldPermissions'));
    expect(valueAt(withheld, 'graph')?.text).toBe('engineMayWrite ? [] : graphWrites');
    expect(valueAt(withheld, 'defender')?.text).toBe('engineMayWrite || !defenderForEndpoint ? [] : defenderWrites');
  });

  it('names no permission itself: no Bicep file can grant one that permissions.json does not list', async () => {
    const all = grantsFor(ALL);
    for (const file of await infraFiles()) {
      const code = codeOf(file);
      for (const permission of [...all.graph, ...all.defender]) expect(code, `${file.path} names ${permission}`).not.toContain(permission);
      if (file.path !== 'infra/modules/entra.bicep') expect(code, file.path).not.toContain('permissions.json');
    }
  });
});

describe('infra/scripts/grant-permissions.sh grants the same list', () => {
  const run = (args: string[], env: NodeJS.ProcessEnv = process.env) => execFileSync('bash', [SCRIPT, ...args], { encoding: 'utf8', env });
  const planned = (output: string) =>
    output
      .split('\n')
      .filter((line) => line.startsWith('would grant '))
      .map((line) => line.slice('would grant '.length));
  const expected = (capabilities: string[], mode: 'audit' | 'enforce') => {
    const grants = grantsFor(capabilities, mode);
    return [...grants.graph.map((p) => `graph ${p}`), ...grants.defender.map((p) => `defender ${p}`)];
  };

  it("plans every capability's read permissions by default (audit mode, as main.bicep's default), each once", () => {
    const output = run(['--dry-run']);
    expect(planned(output)).toEqual(expected(ALL, 'audit'));
    // And names each write it leaves out.
    const left = output.split('\n').filter((line) => line.startsWith('not granted in audit mode '));
    const writes = expected(ALL, 'enforce').filter((p) => !expected(ALL, 'audit').includes(p));
    expect(left).toEqual(writes.map((p) => `not granted in audit mode ${p}: --mode enforce grants it`));
  });

  it('plans the write permissions too with --mode enforce, each once', () => {
    const output = run(['--dry-run', '--mode', 'enforce']);
    expect(planned(output)).toEqual(expected(ALL, 'enforce'));
    expect(output).not.toContain('not granted');
    expect(planned(output)).toContain('graph RoleAssignmentSchedule.ReadWrite.Directory');
    expect(planned(run(['--dry-run']))).not.toContain('graph RoleAssignmentSchedule.ReadWrite.Directory');
  });

  it('plans only the capabilities named, and no Defender permission without Defender', () => {
    for (const mode of ['audit', 'enforce'] as const) {
      const args = ['--dry-run', '--mode', mode, '--capabilities'];
      expect(planned(run([...args, 'enrichment,disableUser']))).toEqual(expected(['enrichment', 'disableUser'], mode));
      expect(planned(run([...args, 'isolateDevice', '--no-defender']))).toEqual([]);
    }
  });

  it('refuses a mode it does not know', () => {
    expect(() => run(['--dry-run', '--mode', 'enforcing'])).toThrow(/unknown mode: enforcing/);
  });

  it('refuses a capability it does not know', () => {
    expect(() => run(['--dry-run', '--capabilities', 'enrichment,wipeEverything'])).toThrow(/unknown capability: wipeEverything/);
  });

  /** A stand-in for the Azure CLI: answers the reads from Graph's roles and what the identity holds, and records each write. */
  const standIn = (held: string[]) => {
    const dir = mkdtempSync(join(tmpdir(), 'grant-permissions-'));
    const posts = join(dir, 'posts.log');
    const values = ['User.Read.All', 'User.EnableDisableAccount.All', 'Directory.ReadWrite.All'];
    const graphRoles = values.map((value, i) => ({
      id: `00000000-0000-0000-0000-${String(i + 1).padStart(12, '0')}`,
      value,
      allowedMemberTypes: ['Application'],
    }));
    const roleId = (value: string) => graphRoles.find((r) => r.value === value)!.id;
    const graph = { id: 'graph-sp', appId: '00000003-0000-0000-c000-000000000000', appRoles: graphRoles };
    const assignments = { value: held.map((value) => ({ resourceId: 'graph-sp', appRoleId: roleId(value) })) };
    writeFileSync(
      join(dir, 'az'),
      `#!/usr/bin/env node
const args = process.argv.slice(2);
const uri = args[args.indexOf('--uri') + 1] ?? '';
if (args[0] === 'cloud') { console.log('https://graph.microsoft.com/'); process.exit(0); }
if (args[0] === 'rest' && args.includes('POST')) { require('fs').appendFileSync(${JSON.stringify(posts)}, uri + ' ' + args[args.indexOf('--body') + 1] + '\\n'); process.exit(0); }
if (uri.includes("servicePrincipals(appId='00000003")) { console.log(JSON.stringify(${JSON.stringify(graph)})); process.exit(0); }
if (uri.endsWith('/appRoleAssignments')) { console.log(JSON.stringify(${JSON.stringify(assignments)})); process.exit(0); }
console.error('unexpected: ' + args.join(' ')); process.exit(1);
`,
    );
    chmodSync(join(dir, 'az'), 0o755);
    const written = () => (existsSync(posts) ? readFileSync(posts, 'utf8').trim().split('\n') : []);
    return { env: { ...process.env, PATH: `${dir}:${process.env.PATH}` }, written, roleId };
  };

  it('against Graph: grants only what is missing, says what was there, and names what is held beyond the list', () => {
    const { env, written, roleId } = standIn(['User.Read.All', 'Directory.ReadWrite.All']);
    const output = run(['--principal-id', 'engine-mi', '--mode', 'enforce', '--capabilities', 'disableUser', '--no-defender'], env);
    expect(output).toContain('already granted  graph User.Read.All');
    expect(output).toContain('granted          graph User.EnableDisableAccount.All');
    expect(output).toContain('beyond the list graph Directory.ReadWrite.All: remove it if nothing else needs it');
    expect(output).not.toContain('audit mode');
    expect(written()).toHaveLength(1);
    expect(written()[0]).toMatch(/\/v1\.0\/servicePrincipals\/engine-mi\/appRoleAssignments /);
    expect(JSON.parse(written()[0]!.split(' ').slice(1).join(' '))).toEqual({
      principalId: 'engine-mi',
      resourceId: 'graph-sp',
      appRoleId: roleId('User.EnableDisableAccount.All'),
    });
  });

  it('against Graph in audit mode: grants the reads only, and names the writes an earlier enforce run left', () => {
    const { env, written } = standIn(['User.Read.All', 'User.EnableDisableAccount.All', 'Directory.ReadWrite.All']);
    const output = run(['--principal-id', 'engine-mi', '--capabilities', 'disableUser', '--no-defender'], env);
    expect(output).toContain('already granted  graph User.Read.All');
    expect(output).not.toMatch(/^granted/m);
    expect(output).toContain('beyond the list graph User.EnableDisableAccount.All: a write the engine calls only in enforce mode; remove it while it audits');
    expect(output).toContain('beyond the list graph Directory.ReadWrite.All: remove it if nothing else needs it');
    expect(output).toMatch(/audit mode: read permissions only\. Granting never withdraws/);
    expect(written()).toEqual([]);
  });

  it("against Graph: gives users and groups the engine's app roles, users-only ones too, reading every page of what is held", () => {
    const dir = mkdtempSync(join(tmpdir(), 'grant-callers-'));
    const posts = join(dir, 'posts.log');
    const appRoles = JSON.parse(readFileSync(join(INFRA, 'appRoles.json'), 'utf8')) as Array<{ id: string; value: string }>;
    const roleId = (value: string) => appRoles.find((r) => r.value === value)!.id;
    const engine = { id: 'engine-sp', appId: 'engine-app', appRoles };
    const assignedTo = '/v1.0/servicePrincipals/engine-sp/appRoleAssignedTo';
    // Two pages: what the group already holds is on the second.
    const pages = {
      first: { value: [{ principalId: 'relay-mi', appRoleId: roleId('Incidents.Submit') }], '@odata.nextLink': 'https://graph.microsoft.com/v1.0/next-page' },
      second: { value: [{ principalId: 'analysts-group', appRoleId: roleId('Responder.Read') }] },
    };
    writeFileSync(
      join(dir, 'az'),
      `#!/usr/bin/env node
const args = process.argv.slice(2);
const uri = args[args.indexOf('--uri') + 1] ?? '';
const say = (value) => { console.log(typeof value === 'string' ? value : JSON.stringify(value)); process.exit(0); };
if (args[0] === 'cloud') say('https://graph.microsoft.com/');
if (args[0] === 'account') say('tenant-1');
if (args[0] === 'ad' && args.includes('api://tenant-1/sentinel-responder')) say('engine-app');
if (args[0] === 'rest' && args.includes('POST')) { require('fs').appendFileSync(${JSON.stringify(posts)}, uri + ' ' + args[args.indexOf('--body') + 1] + '\\n'); process.exit(0); }
if (uri.includes("servicePrincipals(appId='engine-app')")) say(${JSON.stringify(engine)});
if (uri.includes(${JSON.stringify(assignedTo)}) && uri.includes('top=999')) say(${JSON.stringify(pages.first)});
if (uri === 'https://graph.microsoft.com/v1.0/next-page') say(${JSON.stringify(pages.second)});
console.error('unexpected: ' + args.join(' ')); process.exit(1);
`,
    );
    chmodSync(join(dir, 'az'), 0o755);
    const env = { ...process.env, PATH: `${dir}:${process.env.PATH}` };
    const output = run(['--caller', 'lead-user=Responder.Approve', '--caller', 'analysts-group=Responder.Read'], env);
    expect(output).toContain('granted          engine Responder.Approve to lead-user');
    expect(output).toContain('already granted  engine Responder.Read to analysts-group');
    const written = readFileSync(posts, 'utf8').trim().split('\n');
    expect(written).toHaveLength(1);
    expect(written[0]).toMatch(new RegExp(`${assignedTo} `));
    expect(JSON.parse(written[0]!.split(' ').slice(1).join(' '))).toEqual({
      principalId: 'lead-user',
      resourceId: 'engine-sp',
      appRoleId: roleId('Responder.Approve'),
    });
    expect(() => run(['--caller', 'someone=Responder.Admin'], env)).toThrow(/unknown app role Responder\.Admin/);
  });

  it('registers the API as entra.bicep does: roles and scope first, then the Azure CLI pre-authorized for that scope', () => {
    const dir = mkdtempSync(join(tmpdir(), 'register-api-'));
    const patches = join(dir, 'patches.log');
    writeFileSync(
      join(dir, 'az'),
      `#!/usr/bin/env node
const args = process.argv.slice(2);
const say = (value) => { console.log(value); process.exit(0); };
if (args[0] === 'cloud') say('https://graph.microsoft.com/');
if (args[0] === 'account') say('tenant-1');
if (args[0] === 'ad' && args[1] === 'app' && args[2] === 'list') say('engine-app');
if (args[0] === 'ad' && args[1] === 'app' && args[2] === 'show') say('engine-object');
if (args[0] === 'ad' && args[1] === 'sp' && args[2] === 'list') say(args.join(' ').includes('98785600') ? 'sentinel-sp' : 'engine-sp');
if (args[0] === 'rest' && args.includes('PATCH')) { require('fs').appendFileSync(${JSON.stringify(patches)}, args[args.indexOf('--uri') + 1] + ' ' + args[args.indexOf('--body') + 1] + '\\n'); process.exit(0); }
console.error('unexpected: ' + args.join(' ')); process.exit(1);
`,
    );
    chmodSync(join(dir, 'az'), 0o755);
    const output = run(['--register-api'], { ...process.env, PATH: `${dir}:${process.env.PATH}` });
    expect(output).toContain('RESPONDER_AUDIENCE=api://tenant-1/sentinel-responder,engine-app');
    const scope = JSON.parse(readFileSync(join(INFRA, 'apiScope.json'), 'utf8')) as { id: string };
    const written = readFileSync(patches, 'utf8')
      .trim()
      .split('\n')
      .map((line) => ({ uri: line.split(' ')[0], body: JSON.parse(line.split(' ').slice(1).join(' ')) as Record<string, unknown> }));
    expect(written.map((w) => w.uri)).toEqual([
      'https://graph.microsoft.com/v1.0/applications/engine-object',
      'https://graph.microsoft.com/v1.0/applications/engine-object',
      'https://graph.microsoft.com/v1.0/servicePrincipals/engine-sp',
    ]);
    expect(written[0]!.body).toEqual({
      appRoles: JSON.parse(readFileSync(join(INFRA, 'appRoles.json'), 'utf8')),
      api: { requestedAccessTokenVersion: 2, oauth2PermissionScopes: [scope] },
    });
    expect(written[1]!.body).toEqual({
      api: {
        requestedAccessTokenVersion: 2,
        oauth2PermissionScopes: [scope],
        preAuthorizedApplications: [{ appId: '04b07795-8ddb-461a-bbee-02f9e1bf7b46', delegatedPermissionIds: [scope.id] }],
      },
    });
    expect(written[2]!.body).toEqual({ appRoleAssignmentRequired: true });
  });
});
