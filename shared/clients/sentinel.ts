import type { SecurityInsights } from '@azure/arm-securityinsight';
import { hash } from 'node:crypto';
import { scopeFor } from '../cloud';
import type { ResponderConfig } from '../config';
import type { IncidentArmIdParts, WorkspaceRef } from '../signals/identifiers';
import { displayText, TEXT_LIMITS } from '../limits';
import { ApiError, nextLinkOn, parseRetryAfter } from './apiError';
import { azureCredential } from './credential';

/** Reading an incident, and writing back to the incident an action came from (reference/sentinel.md). */
export interface SentinelIncidents {
  /**
   * The incident as ARM JSON (`{ id, properties: { …, relatedEntities } }`), its entities listed through
   * `incidents.listEntities` (trigger payloads may lack them; Sentinel adds them minutes after creation).
   */
  incidentWithEntities(incident: IncidentArmIdParts): Promise<Record<string, unknown>>;
  /** The incident's status and, once closed, how an analyst classified it and why (bounded: it is analysts' free text). */
  incidentStatus(incident: IncidentArmIdParts): Promise<IncidentStatus>;
  /** Create, or rewrite, the comment with this id: the caller derives it from the action, so a retry never duplicates. */
  comment(incident: IncidentArmIdParts, commentId: string, message: string): Promise<void>;
  /** Add a label unless the incident has it (read, then write back with the ETag: the PUT replaces the incident). */
  label(incident: IncidentArmIdParts, label: string): Promise<void>;
  /**
   * A page of the workspace's incidents modified at or after `since` (of these severities; all when none given), as
   * ARM JSON (without entities), newest change first; from `next`, a next link an earlier page gave.
   */
  incidentsPage(workspace: WorkspaceRef, since: Date, severities: readonly string[], next?: string): Promise<IncidentsPage>;
}

/** An incident's status (`New`, `Active`, `Closed`) and, once closed, its classification, reason and comment. */
export interface IncidentStatus {
  status: string;
  /** `TruePositive`, `BenignPositive`, `FalsePositive`, `Undetermined`. */
  classification?: string;
  /** `SuspiciousActivity`, `SuspiciousButExpected`, `IncorrectAlertLogic`, `InaccurateData`. */
  classificationReason?: string;
  classificationComment?: string;
}

export interface IncidentsPage {
  incidents: Array<Record<string, unknown>>;
  next?: string;
}

/** Incidents a page lists: ARM's own default is 50; a page of 200 keeps a day of a busy workspace to a few calls. */
const INCIDENTS_PAGE_SIZE = 200;

/**
 * Sentinel through @azure/arm-securityinsight 1.0.0-beta.6 (pinned: the TypeSpec rewrite changes the surface; this
 * file is the only one that knows it). One client per subscription, built on first use. The SDK's own retries are
 * off: they sleep inside the call, and the worker's retries belong to the queue.
 */
export class SentinelReports implements SentinelIncidents {
  private readonly clients = new Map<string, Promise<SecurityInsights>>();
  /** Labels this process has already put on incidents: every action of an incident reports, one label suffices. */
  private readonly labelled = new Set<string>();

  constructor(private readonly config: Pick<ResponderConfig, 'endpoints' | 'authorityHost'>) {}

  async incidentWithEntities(incident: IncidentArmIdParts): Promise<Record<string, unknown>> {
    const client = await this.client(incident.subscriptionId);
    const got: { body?: unknown } = {};
    const listed: { body?: unknown } = {};
    await Promise.all([
      call(() => client.incidents.get(incident.resourceGroup, incident.workspaceName, incident.incidentName, rawInto(got))),
      call(() => client.incidents.listEntities(incident.resourceGroup, incident.workspaceName, incident.incidentName, rawInto(listed))),
    ]);
    const body = (got.body ?? {}) as { id?: unknown; properties?: Record<string, unknown> };
    const entities = ((listed.body ?? {}) as { entities?: unknown[] }).entities ?? [];
    return { ...body, properties: { ...body.properties, relatedEntities: entities } };
  }

  async incidentStatus(incident: IncidentArmIdParts): Promise<IncidentStatus> {
    const client = await this.client(incident.subscriptionId);
    const got = await call(() => client.incidents.get(incident.resourceGroup, incident.workspaceName, incident.incidentName));
    return {
      status: displayText(got.status ?? '', TEXT_LIMITS.name),
      ...(got.classification !== undefined && { classification: displayText(got.classification, TEXT_LIMITS.name) }),
      ...(got.classificationReason !== undefined && { classificationReason: displayText(got.classificationReason, TEXT_LIMITS.name) }),
      ...(got.classificationComment !== undefined && { classificationComment: displayText(got.classificationComment, TEXT_LIMITS.note) }),
    };
  }

  async comment(incident: IncidentArmIdParts, commentId: string, message: string): Promise<void> {
    const client = await this.client(incident.subscriptionId);
    await call(() => client.incidentComments.createOrUpdate(incident.resourceGroup, incident.workspaceName, incident.incidentName, commentId, { message }));
  }

  async label(incident: IncidentArmIdParts, label: string): Promise<void> {
    const done = `${incident.subscriptionId}/${incident.resourceGroup}/${incident.workspaceName}/${incident.incidentName}|${label}`.toLowerCase();
    if (this.labelled.has(done)) return;
    const client = await this.client(incident.subscriptionId);
    const current = await call(() => client.incidents.get(incident.resourceGroup, incident.workspaceName, incident.incidentName));
    if (!current.labels?.some((l) => l.labelName.toLowerCase() === label.toLowerCase())) {
      await call(() =>
        client.incidents.createOrUpdate(incident.resourceGroup, incident.workspaceName, incident.incidentName, {
          etag: current.etag,
          title: current.title,
          severity: current.severity,
          status: current.status,
          ...(current.description !== undefined && { description: current.description }),
          ...(current.owner !== undefined && { owner: current.owner }),
          // A closed incident keeps how it was closed: a field the PUT leaves out is cleared.
          ...(current.classification !== undefined && { classification: current.classification }),
          ...(current.classificationReason !== undefined && { classificationReason: current.classificationReason }),
          ...(current.classificationComment !== undefined && { classificationComment: current.classificationComment }),
          labels: [...(current.labels ?? []).map((l) => ({ labelName: l.labelName })), { labelName: label }],
        }),
      );
    }
    if (this.labelled.size >= 10_000) this.labelled.clear();
    this.labelled.add(done);
  }

  async incidentsPage(workspace: WorkspaceRef, since: Date, severities: readonly string[], next?: string): Promise<IncidentsPage> {
    const client = await this.client(workspace.subscriptionId);
    const link = next === undefined ? undefined : nextLinkOn('arm', next, new URL(this.config.endpoints.arm).origin);
    // A link to another workspace's list (a kept place tampered with, an answer gone astray) would stand in for this one's.
    if (link !== undefined && new URL(link).pathname.toLowerCase() !== incidentsPath(workspace).toLowerCase())
      throw new ApiError('arm', 400, 'ForeignNextLink', `a next link that does not list ${workspace.workspaceName}'s incidents: not followed`);
    // Modified, not created: createdTimeUtc is when the source (Defender XDR) created it, and an incident synced late
    // carries a creation time already past (learn.microsoft.com: Sentinel incidents API, createdTimeUtc filter, Q&A).
    const bySeverity = severities.map((severity) => `properties/severity eq '${severity}'`).join(' or ');
    const filter = `properties/lastModifiedTimeUtc ge ${since.toISOString()}${bySeverity ? ` and (${bySeverity})` : ''}`;
    const got: { body?: unknown } = {};
    const pages = client.incidents
      .list(workspace.resourceGroup, workspace.workspaceName, {
        filter,
        orderby: 'properties/lastModifiedTimeUtc desc',
        top: INCIDENTS_PAGE_SIZE,
        ...rawInto(got),
      })
      .byPage(link === undefined ? undefined : { continuationToken: link });
    await call(() => pages.next());
    const body = (got.body ?? {}) as { value?: unknown; nextLink?: unknown };
    const incidents = Array.isArray(body.value) ? body.value.filter((item): item is Record<string, unknown> => typeof item === 'object' && item !== null) : [];
    return { incidents, ...(typeof body.nextLink === 'string' && body.nextLink !== '' && { next: body.nextLink }) };
  }

  private client(subscriptionId: string): Promise<SecurityInsights> {
    let client = this.clients.get(subscriptionId);
    if (!client) {
      client = (async () => {
        const { SecurityInsights } = await import('@azure/arm-securityinsight');
        return new SecurityInsights(await azureCredential(this.config.authorityHost), subscriptionId, {
          endpoint: this.config.endpoints.arm,
          credentialScopes: [scopeFor(this.config.endpoints.arm)],
          retryOptions: { maxRetries: 0 },
        });
      })();
      this.clients.set(subscriptionId, client);
    }
    return client;
  }
}

/** The ARM path that lists a workspace's incidents. */
function incidentsPath({ subscriptionId, resourceGroup, workspaceName }: WorkspaceRef): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.OperationalInsights/workspaces/${workspaceName}/providers/Microsoft.SecurityInsights/incidents`;
}

/**
 * Keep the JSON as the service sent it, not the SDK's model: beta.6 types entities' additionalData values as objects
 * and turns a string such as MdatpDeviceId into a character-indexed object; dates stay ISO strings too. (parsedBody is
 * no help: the SDK's deserializer rewrites it in place; bodyAsText is untouched.)
 */
function rawInto(into: { body?: unknown }): { onResponse: (response: { bodyAsText?: string | null }) => void } {
  return { onResponse: (response) => void (into.body = response.bodyAsText ? (JSON.parse(response.bodyAsText) as unknown) : undefined) };
}

async function call<T>(request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (error) {
    const e = error as { statusCode?: number; code?: string; message?: string; response?: { headers?: { get(name: string): string | undefined } } };
    throw new ApiError('arm', e.statusCode ?? 0, e.code, e.message ?? 'no answer from ARM', parseRetryAfter(e.response?.headers?.get('retry-after')));
  }
}

/** A comment id is a GUID: 32 hex characters of SHA-256 of the action's idempotency key, dashed. */
export function commentIdFor(idempotencyKey: string): string {
  const k = hash('sha256', idempotencyKey, 'hex');
  return `${k.slice(0, 8)}-${k.slice(8, 12)}-${k.slice(12, 16)}-${k.slice(16, 20)}-${k.slice(20, 32)}`;
}
