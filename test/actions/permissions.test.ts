import type { TokenCredential } from '@azure/identity';
import { describe, expect, it } from 'vitest';
import { ACTIONS, type ActionKind } from '../../shared/actions/catalogue';
import { confirmCompromised } from '../../shared/actions/confirmCompromised';
import { disableUser, enableUser } from '../../shared/actions/disableUser';
import { executeOnVerifiedTarget } from '../../shared/actions/execute';
import type { ActionExecutor, ExecutionContext, ExecutionOutcome } from '../../shared/actions/executor';
import { isolateDevice, unisolateDevice } from '../../shared/actions/isolateDevice';
import { ACTION_PERMISSIONS, type Requirement } from '../../shared/actions/permissions';
import { requirePimReapproval, restorePimAssignments, type PimSnapshot } from '../../shared/actions/requirePimReapproval';
import { revokeSessions } from '../../shared/actions/revokeSessions';
import type { ActionTarget } from '../../shared/actions/target';
import { createDefenderDevices } from '../../shared/clients/defender';
import { createGraphDirectory } from '../../shared/clients/graph';
import type { Mode } from '../../shared/policy/schema';
import { DEMO, DEMO_DEVICES, SECURITY_ADMINISTRATOR } from '../../sandbox/tenant';
import { command } from '../fixtures/commands';
import { useSandboxContext } from '../support/sandboxContext';

/**
 * What each executor calls in each mode, against the sandbox, which answers 403 to a token holding none of the
 * application permissions an endpoint accepts (sandbox/permissions.ts, written from the API reference pages): so the
 * `read` requirements of shared/actions/permissions.ts are all an audit-mode engine needs, and each one is needed.
 */
const env = useSandboxContext();
const tenant = () => env.sandbox.tenant;

const EXECUTORS: Record<ActionKind, ActionExecutor> = {
  disableUser,
  enableUser,
  revokeSessions,
  confirmCompromised,
  requirePimReapproval,
  restorePimAssignments,
  isolateDevice,
  unisolateDevice,
};

const adele = { type: 'user' as const, id: DEMO.adele, upn: 'adele.vance@contoso.com' };
const megan = { type: 'user' as const, id: DEMO.megan, upn: 'megan.bowen@contoso.com' };
const wks = { type: 'device' as const, id: DEMO_DEVICES.wks042, fqdn: 'wks-042.contoso.com' };

/** A state of the tenant in which each kind has something to do (so audit reads all it reads), arranged with every permission. */
const SCENARIOS: Record<ActionKind, () => Promise<{ target: ActionTarget; snapshot?: unknown }>> = {
  disableUser: async () => ({ target: adele }),
  enableUser: async () => {
    tenant().users.get(DEMO.adele)!.accountEnabled = false;
    return { target: adele, snapshot: { wasEnabled: true } };
  },
  revokeSessions: async () => ({ target: adele }),
  confirmCompromised: async () => ({ target: adele }),
  requirePimReapproval: async () => ({ target: megan }),
  restorePimAssignments: async () => {
    const snapshot: PimSnapshot = {
      principalId: DEMO.megan,
      removed: [{ roleDefinitionId: SECURITY_ADMINISTRATOR, directoryScopeId: '/', assignmentType: 'Assigned' }],
      policyGaps: [],
    };
    return { target: megan, snapshot };
  },
  isolateDevice: async () => ({ target: wks }),
  unisolateDevice: async () => {
    const isolate = () => executeOnVerifiedTarget(isolateDevice, command('isolateDevice', wks), env.context);
    await isolate();
    const done = await isolate();
    expect(done).toMatchObject({ outcome: 'succeeded', alreadyDone: false });
    return { target: wks, snapshot: (done as { rollback: unknown }).rollback };
  },
};

/** The clients of a managed identity holding only `roles`: each token the sandbox issues it carries exactly those. */
async function holding(roles: string[]): Promise<ExecutionContext> {
  const credential: TokenCredential = {
    getToken: async (scopes) => ({ token: await env.sandbox.identityToken([scopes].flat()[0]!, roles), expiresOnTimestamp: Date.now() + 3_600_000 }),
  };
  const settings = {
    authorityHost: env.sandbox.origin,
    cloud: 'AzurePublicCloud' as const,
    endpoints: { graph: env.sandbox.origin, defender: env.sandbox.origin, arm: env.sandbox.origin },
  };
  return {
    directory: await createGraphDirectory(settings, undefined, credential),
    devices: await createDefenderDevices(settings, undefined, credential),
    incidents: env.context.incidents,
  };
}

/** The least privileged set of each requirement. */
const least = (requirements: readonly Requirement[]) => [...new Set(requirements.flatMap((r) => r.anyOf[0] ?? []))];
const reads = (kind: ActionKind) => ACTION_PERMISSIONS[kind].filter((r) => r.need === 'read');
const writes = (kind: ActionKind) => ACTION_PERMISSIONS[kind].filter((r) => r.need === 'write');

async function run(kind: ActionKind, mode: Mode, roles: string[]): Promise<ExecutionOutcome> {
  const { target, snapshot } = await SCENARIOS[kind]();
  const context = await holding(roles);
  tenant().calls.length = 0;
  return executeOnVerifiedTarget(EXECUTORS[kind], command(kind, target, { mode }, 2), { ...context, ...(snapshot !== undefined && { snapshot }) });
}

const KINDS = Object.keys(ACTIONS) as ActionKind[];
const refused = () =>
  tenant()
    .calls.filter((c) => c.status === 403)
    .map((c) => `${c.method} ${c.path}`);

describe('an identity holding only the read permissions of an action', () => {
  it.each(KINDS)('%s: audits in audit mode, every call answered', async (kind) => {
    const outcome = await run(kind, 'audit', least(reads(kind)));
    expect(outcome, JSON.stringify(outcome)).toMatchObject({ outcome: 'audited' });
    expect(refused()).toEqual([]);
  });

  // requirePimReapproval is refused on a read only enforce mode makes (eligible roles, under its write permission).
  it.each(KINDS)('%s: in enforce mode, is refused (403) before it changes anything, the missing write permission named', async (kind) => {
    const outcome = await run(kind, 'enforce', least(reads(kind)));
    expect(outcome).toMatchObject({ outcome: 'failed', class: 'blocked', status: 403 });
    for (const permission of least(writes(kind))) expect((outcome as { detail: string }).detail).toContain(permission);
    expect(refused()).toHaveLength(1);
    expect(tenant().calls.filter((c) => c.method !== 'GET' && c.status < 400)).toEqual([]);
  });

  it.each(KINDS)('%s: with its write permissions too, is not refused in enforce mode', async (kind) => {
    const outcome = await run(kind, 'enforce', least(ACTION_PERMISSIONS[kind]));
    expect(outcome.outcome, JSON.stringify(outcome)).toMatch(/^(succeeded|pending)$/);
    expect(refused()).toEqual([]);
  });
});

describe('each read permission an action declares is one its audit calls', () => {
  const cases = KINDS.flatMap((kind) => reads(kind).map((requirement) => [kind, requirement.why, requirement] as const));
  it.each(cases)('%s: without the permission to %s, audit mode is refused (403)', async (kind, _why, requirement) => {
    const without = least(reads(kind).filter((r) => r !== requirement));
    const outcome = await run(kind, 'audit', without);
    expect(outcome).toMatchObject({ outcome: 'failed', status: 403 });
    expect(refused()).toHaveLength(1);
  });
});
