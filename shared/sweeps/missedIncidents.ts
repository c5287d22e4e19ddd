import { InputError } from '../errors';
import type { CompiledPolicy } from '../policy/decide';
import { parseIncidentArmId, sameWorkspace, type WorkspaceRef } from '../signals/identifiers';
import { normalizeSentinelPayload } from '../signals/sentinel';
import type { Severity } from '../signals/signal';
import { decided, type SweepContext, type SweepDefinition, type SweepPage } from './sweep';

/**
 * missedIncidents: incidents changed in the last hours (RESPONDER_SWEEP_MISSEDINCIDENTS_HOURS, 24 by default), of the
 * severities the policy acts on, that the engine has no decision on: the automation rule never ran its playbook, or
 * the relay gave up (automation rules that silently stop firing are a known failure). Each is submitted as if the
 * relay had posted it; what the engine decides is recorded, so the next run finds it decided. Left alone: incidents
 * changed within the last 15 minutes (the relay may still post them), and closed ones (an analyst has had the last
 * word). Every hour by default, at a minute the other sweeps leave free.
 */
export const missedIncidents: SweepDefinition = {
  setting: 'RESPONDER_SWEEP_MISSEDINCIDENTS',
  schedule: '0 45 * * * *',
  async page(context, cursor) {
    const place = placeOf(cursor, context.workspaces.length);
    const workspace = context.workspaces[place.workspace];
    const severities = severitiesActedOn(context.policy);
    if (workspace === undefined || severities === undefined) {
      const why = workspace === undefined ? 'no workspace is set (RESPONDER_SENTINEL_WORKSPACES)' : 'no rule of the policy acts on incidents';
      return { findings: [], passedOver: [why] };
    }
    const since = new Date(context.startedAt.getTime() - context.timings.missedLookBackMs);
    const listed = await (await context.incidents()).incidentsPage(workspace, since, severities, place.next);
    const next = listed.next !== undefined ? { workspace: place.workspace, next: listed.next } : { workspace: place.workspace + 1 };
    const page: SweepPage = { findings: [], passedOver: [], ...(next.workspace < context.workspaces.length && { next: JSON.stringify(next) }) };
    for (const incident of listed.incidents) {
      const finding = await missed(context, workspace, incident);
      if (typeof finding === 'string') page.passedOver.push(finding);
      else page.findings.push(finding);
    }
    return page;
  },
};

/** The incident as a finding, if the engine has not decided it and should; else why it is passed over. */
async function missed(context: SweepContext, workspace: WorkspaceRef, incident: Record<string, unknown>): Promise<ReturnType<typeof decided> | string> {
  let signal;
  try {
    signal = normalizeSentinelPayload(incident);
  } catch (error) {
    if (error instanceof InputError) return `an incident ARM listed could not be read: ${error.message}`;
    throw error;
  }
  const parts = signal.incident && parseIncidentArmId(signal.incident.armId);
  // ARM answers for the workspace asked: an incident of another would be submitted on that answer's word alone.
  if (!parts || !sameWorkspace(parts, workspace)) return `${signal.subject}: listed under ${workspace.workspaceName} but not in it`;
  if (signal.status?.toLowerCase() === 'closed') return `${signal.subject}: closed before the engine decided it`;
  const changed = Date.parse(String((incident.properties as Record<string, unknown> | undefined)?.lastModifiedTimeUtc));
  if (context.startedAt.getTime() - changed < context.timings.missedGraceMs) return `${signal.subject}: changed just now, the relay may still post it`;
  const decision = await context.ledger.decisionOn(signal.subject);
  if (decision) return `${signal.subject}: decided ${decision.at}`;
  // Actions recorded for it say it was decided too (before decisions were kept, or their record failed to write).
  if ((await context.ledger.list({ subject: signal.subject })).length > 0) return `${signal.subject}: its actions are in the ledger`;
  return decided(context, signal);
}

/** Where a run is: which workspace, and the next link within it. A place from another setting starts at the top. */
function placeOf(cursor: string | undefined, workspaces: number): { workspace: number; next?: string } {
  let kept: { workspace?: unknown; next?: unknown } = {};
  try {
    if (cursor !== undefined) kept = JSON.parse(cursor) as typeof kept;
  } catch {
    kept = {};
  }
  const workspace =
    typeof kept.workspace === 'number' && Number.isInteger(kept.workspace) && kept.workspace >= 0 && kept.workspace < workspaces ? kept.workspace : 0;
  return { workspace, ...(workspace === kept.workspace && typeof kept.next === 'string' && { next: kept.next }) };
}

/**
 * The severities the policy's rules act on incidents at: [] when a rule that can match an incident names none (every
 * severity), undefined when no rule can match an incident at all.
 */
export function severitiesActedOn(policy: CompiledPolicy): Severity[] | undefined {
  const severities = new Set<Severity>();
  let anyRule = false;
  for (const rule of policy.policy.rules) {
    if (!rule.enabled || (rule.when.source && !rule.when.source.includes('incident'))) continue;
    anyRule = true;
    if (!rule.when.severity) return [];
    for (const severity of rule.when.severity) severities.add(severity);
  }
  return anyRule ? [...severities] : undefined;
}
