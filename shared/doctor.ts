import type { TokenCredential } from '@azure/identity';
import { ACTIONS, type ActionKind } from './actions/catalogue';
import { ACTION_PERMISSIONS, enrichmentPermissions, missingFor, neededIn, type PermissionApi, type Requirement } from './actions/permissions';
import { azureCredential } from './clients/credential';
import { defenderScopeFor, scopeFor } from './cloud';
import type { ResponderConfig } from './config';
import type { CompiledPolicy } from './policy/decide';
import { effectiveMode } from './policy/mode';
import type { Mode } from './policy/schema';

export interface ApiCheck {
  api: PermissionApi | 'arm';
  scope: string;
  /** Whether a token could be acquired at all, and the app roles it carries. */
  token: 'ok' | 'failed' | 'not configured';
  roles: string[];
  problem?: string;
}

export interface MissingPermission {
  api: PermissionApi;
  why: string;
  permissions: string[];
}

export interface CapabilityCheck {
  capability: string;
  /** Nothing the capability calls in the effective mode is missing. */
  ok: boolean;
  missing: MissingPermission[];
  /** In audit mode: the write permissions missing, which the engine calls only once it enforces. */
  toEnforce: MissingPermission[];
}

export interface Diagnosis {
  ok: boolean;
  /** The mode the engine runs in (effectiveMode): audit calls only the read permissions. */
  mode: Mode;
  apis: ApiCheck[];
  capabilities: CapabilityCheck[];
  notes: string[];
}

/**
 * Permission preflight: acquire a token for each API the way the engine will, read the app roles it carries, and
 * say, per capability the policy enables (its actions, their rollbacks, enrichment), which permission is missing.
 * A missing application role is the commonest reason a playbook fails only when automation runs it. In audit mode the
 * engine calls only what it reads: a missing write permission is no failure then, but is named as needed to enforce
 * (an audit deployment grants the reads only, docs/permissions.md).
 */
export async function diagnose(config: ResponderConfig, policy: CompiledPolicy, identity?: TokenCredential): Promise<Diagnosis> {
  const credential = identity ?? (await azureCredential(config.authorityHost));
  const check = async (api: ApiCheck['api'], endpoint: string | undefined, scopeOf: (e: string) => string): Promise<ApiCheck> => {
    if (!endpoint) return { api, scope: '', token: 'not configured', roles: [] };
    const scope = scopeOf(endpoint);
    try {
      const token = await credential.getToken(scope);
      return { api, scope, token: 'ok', roles: token ? rolesOf(token.token) : [] };
    } catch (error) {
      return { api, scope, token: 'failed', roles: [], problem: (error as Error).message.split('\n')[0] };
    }
  };
  const apis = await Promise.all([
    check('graph', config.endpoints.graph, scopeFor),
    check('defender', config.endpoints.defender, defenderScopeFor),
    check('arm', config.endpoints.arm, scopeFor),
  ]);
  const granted: Record<PermissionApi, Set<string>> = {
    graph: new Set(apis.find((a) => a.api === 'graph')?.roles),
    defender: new Set(apis.find((a) => a.api === 'defender')?.roles),
  };

  const kinds = new Set<ActionKind>();
  for (const { rule } of policy.rules) {
    if (!rule.enabled) continue;
    for (const step of rule.then) {
      kinds.add(step.kind);
      const rollback = ACTIONS[step.kind].rollback;
      if (rollback) kinds.add(rollback);
    }
  }
  const capabilities: CapabilityCheck[] = [];
  const mode = effectiveMode(policy.policy.mode, config.modeOverride);
  const lacking = (requirements: Requirement[]): MissingPermission[] =>
    requirements.map((r) => ({ api: r.api, why: r.why, permissions: missingFor(r, granted[r.api]) })).filter((m) => m.permissions.length > 0);
  const add = (capability: string, requirements: Requirement[]) => {
    const missing = lacking(neededIn(mode, requirements));
    const toEnforce = mode === 'audit' ? lacking(requirements.filter((r) => r.need === 'write')) : [];
    capabilities.push({ capability, ok: missing.length === 0, missing, toEnforce });
  };
  if (config.enrichment) add('enrichment', enrichmentPermissions(policy.groupsOfInterest.length > 0));
  for (const kind of kinds) add(kind, ACTION_PERMISSIONS[kind]);

  const notes = [
    'Sentinel comments and labels need the Azure role Microsoft Sentinel Responder on the workspace: Azure checks it at call time, it is not in the token',
    config.workspaces.length === 0
      ? 'RESPONDER_SENTINEL_WORKSPACES is not set: the missedIncidents sweep has no workspace to list incidents in'
      : `the missedIncidents sweep lists incidents in ${config.workspaces.map((w) => w.workspaceName).join(', ')}: each needs the same role`,
  ];
  const ok = apis.every((a) => a.token !== 'failed') && capabilities.every((c) => c.ok);
  return { ok, mode, apis, capabilities, notes };
}

/** The app roles in an access token's payload. The token came from Entra for this process: no need to verify it. */
function rolesOf(token: string): string[] {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { roles?: unknown };
    return Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === 'string') : [];
  } catch {
    return [];
  }
}
