import { hash } from 'node:crypto';
import { isGuid, isGuidAt, isMdeDeviceId } from '../signals/identifiers';
import type { IncidentRef, Signal } from '../signals/signal';
import { ACTION_KINDS, type ActionKind } from './catalogue';

/**
 * The idempotency key of an action: `<subject part>.<kind>.<target part>`, for example
 * `e72ca8ec73e01a995cd74139a1499f2736ff2ab5.revokeSessions.6e7b768e-07e2-4810-8459-485f84f8f204`.
 * - subject part, 40 hex characters, the same for every delivery of the same subject — Sentinel fires on an incident's
 *   creation and on each update, and each yields the same key for the same action on the same target:
 *   - for an incident whose name is a GUID (as Sentinel names them): 8 hex of SHA-256 of its workspace
 *     (`subscription/resource group/workspace`, lower-cased), then the incident's GUID without its dashes;
 *   - for anything else (an alert, a request, a finding, an incident named otherwise): the first 40 hex characters of
 *     SHA-256 of the subject.
 * - kind: the action.
 * - target part: the target id (`targetId`) itself when it is an Entra object or device id (a GUID) or a Defender
 *   machine id (40 hex); otherwise (a UPN, an FQDN) `h` and 32 hex characters of its SHA-256.
 *
 * It is the ledger key (a valid Table RowKey) and the base of every Service Bus MessageId: at most 99 characters for
 * the engine's kinds and targets, leaving room for the derived retry suffixes under the broker's 128. Distinct
 * actions do not share a key: incident GUIDs and target ids are carried whole, the workspace keeps two workspaces'
 * incidents apart, and the rest are told apart by SHA-256 — so nobody who shapes incident entities can craft a target
 * whose key collides with another action's and make the engine skip it as "already done". (Eight hex characters
 * keep workspaces apart only where their incidents' GUIDs are also equal, which Sentinel's random GUIDs never are; to
 * make two keys meet on purpose one would have to name incidents in a workspace the engine serves, and whoever can do
 * that can already close or edit the incident itself.) A reader of the ledger or the queue sees at a glance which
 * incident an action belongs to, what it is and on whom.
 *
 * Incident GUIDs and target ids are carried rather than hashed because a hash per incident or per action is a large
 * share of a decision's cost (each native hash call has a fixed cost); the workspace's digest is remembered (below).
 */
export function idempotencyKeys(signal: Pick<Signal, 'subject' | 'incident'>): (kind: ActionKind, targetPart: string) => string {
  const subjectPart = subjectKeyPart(signal);
  return (kind, targetPart) => `${subjectPart}.${kind}.${targetPart}`;
}

function subjectKeyPart({ subject, incident }: Pick<Signal, 'subject' | 'incident'>): string {
  // An incident's subject is its ARM id lower-cased, which ends with its name: the GUID is read there, already lower-case.
  const at = subject.length - 36;
  if (incident === undefined || incident.name.length !== 36 || !isGuidAt(subject, at)) return hash('sha256', subject, 'hex').slice(0, 40);
  return `${workspaceDigest(incident)}${subject.slice(at, at + 8)}${subject.slice(at + 9, at + 13)}${subject.slice(at + 14, at + 18)}${subject.slice(at + 19, at + 23)}${subject.slice(at + 24)}`;
}

/**
 * Workspaces keyed lately, newest first, with their digests: an engine serves a handful of workspaces, so each is
 * hashed once rather than once per incident. What is remembered changes no key, only how often it is computed.
 */
const recentWorkspaces: Array<Pick<IncidentRef, 'subscriptionId' | 'resourceGroup' | 'workspaceName'> & { digest: string }> = [];
const RECENT_WORKSPACES = 16;

function workspaceDigest({ subscriptionId, resourceGroup, workspaceName }: IncidentRef): string {
  for (const seen of recentWorkspaces) {
    if (seen.workspaceName === workspaceName && seen.resourceGroup === resourceGroup && seen.subscriptionId === subscriptionId) return seen.digest;
  }
  const digest = hash('sha256', `${subscriptionId}/${resourceGroup}/${workspaceName}`.toLowerCase(), 'hex').slice(0, 8);
  if (recentWorkspaces.unshift({ subscriptionId, resourceGroup, workspaceName, digest }) > RECENT_WORKSPACES) recentWorkspaces.pop();
  return digest;
}

/** The target's part of its keys, from its lower-cased `targetId`: computed once per target, used for each action. */
export function targetKeyPart(targetId: string): string {
  return isGuid(targetId) || isMdeDeviceId(targetId) ? targetId : `h${hash('sha256', targetId, 'hex').slice(0, 32)}`;
}

/** What every idempotency key looks like; commands whose key does not are refused as poison. */
export const IDEMPOTENCY_KEY_PATTERN = new RegExp(
  `^[0-9a-f]{40}\\.(?:${ACTION_KINDS.join('|')})\\.(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{40}|h[0-9a-f]{32})$`,
);
