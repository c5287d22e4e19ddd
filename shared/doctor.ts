import { ACTIONS, type ActionKind } from './actions/catalogue';
import { ACTION_PERMISSIONS, enrichmentPermissions, missingFor, type PermissionApi, type Requirement } from './actions/permissions';
import { azureCredential } from './clients/credential';
import { defenderScopeFor, scopeFor } from './cloud';
import type { ResponderConfig } from './config';
import type { CompiledPolicy } from './policy/decide';

export interface ApiCheck {
  api: PermissionApi | 'arm';
  scope: string;
  /** Whether a token could be acquired at all, and the app roles it carries. */
  token: 'ok' | 'failed' | 'not configured';
  roles: string[];
  problem?: string;
}

export interface CapabilityCheck {
  capability: string;
  ok: boolean;
  missing: Array<{ api: PermissionApi; why: string; permissions: string[] }>;
}

export interface Diagnosis {
  ok: boolean;
  apis: ApiCheck[];
  capabilities: CapabilityCheck[];
  notes: string[];
}

/**
 * Permission preflight: acquire a token for each API the way the engine will, read the app roles it carries, and
 * say, per capability the policy enables (its actions, their rollbacks, enrichment), which permission is missing.
 * A missing application role is the commonest reason a playbook fails only when automation runs it.
 */
export async function diagnose(config: ResponderConfig, policy: CompiledPolicy): Promise<Diagnosis> {
  const credential = await azureCredential(config.authorityHost);
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
  const add = (capability: string, requirements: Requirement[]) => {
    const missing = requirements.map((r) => ({ api: r.api, why: r.why, permissions: missingFor(r, granted[r.api]) })).filter((m) => m.permissions.length > 0);
    capabilities.push({ capability, ok: missing.length === 0, missing });
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
  return { ok, apis, capabilities, notes };
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
