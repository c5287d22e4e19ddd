import { apiError, pageOf, type Route, type SandboxAnswer, type SandboxRequest } from './routes';
import type { SandboxIncident, SandboxTenant } from './tenant';

const INCIDENT =
  /^(\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.OperationalInsights\/workspaces\/[^/]+\/providers\/Microsoft\.SecurityInsights\/incidents\/[^/]+)(\/comments(?:\/([^/]+))?|\/entities)?$/i;

const INCIDENTS =
  /^(\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.OperationalInsights\/workspaces\/[^/]+\/providers\/Microsoft\.SecurityInsights\/incidents)$/i;

/**
 * The Sentinel ARM endpoints the engine uses (reference/sentinel.md): list a workspace's incidents, read one, list its
 * entities, replace it
 * (PUT, guarded by its ETag: a stale one answers 412), and create or rewrite a comment whose id the caller chooses.
 */
export function armRoutes(tenant: SandboxTenant): Route {
  return (request) => {
    const workspace = INCIDENTS.exec(request.path);
    if (workspace && request.method === 'GET') return listIncidents(tenant, workspace[1] as string, request);
    const match = INCIDENT.exec(request.path);
    if (!match) return undefined;
    if (!request.query.get('api-version'))
      return apiError(400, 'MissingApiVersionParameter', 'The api-version query parameter (?api-version=) is required for all requests.');
    const incident = tenant.incidents.get((match[1] as string).toLowerCase());
    if (!incident) return apiError(404, 'NotFound', `Incident ${match[1]} was not found`);
    if (!match[2]) return incidentRoute(incident, request);
    if (match[2].toLowerCase() === '/entities' && request.method === 'POST') return { status: 200, body: { entities: incident.entities, metaData: [] } };
    if (match[3] && request.method === 'PUT') return putComment(incident, decodeURIComponent(match[3]), request);
    if (!match[3] && request.method === 'GET') return { status: 200, body: { value: [...incident.comments.values()] } };
    return undefined;
  };
}

function view(incident: SandboxIncident): Record<string, unknown> {
  return { id: incident.id, name: incident.name, etag: incident.etag, type: 'Microsoft.SecurityInsights/Incidents', properties: incident.properties };
}

function incidentRoute(incident: SandboxIncident, request: SandboxRequest): SandboxAnswer {
  if (request.method === 'GET') return { status: 200, body: view(incident) };
  if (request.method !== 'PUT') return apiError(405, 'MethodNotAllowed', `${request.method} is not supported`);
  const body = request.body as { etag?: string; properties?: Partial<SandboxIncident['properties']> } | undefined;
  if (body?.etag !== incident.etag) return apiError(412, 'PreconditionFailed', 'The incident was modified: read it again and send its current etag');
  const properties = body.properties ?? {};
  if (typeof properties.title !== 'string' || typeof properties.severity !== 'string' || typeof properties.status !== 'string') {
    return apiError(400, 'BadRequest', 'title, severity and status are required: a PUT replaces the whole incident');
  }
  // The PUT replaces what a caller may write: a field left out (a closed incident's classification) is cleared; what
  // the service keeps (its number, when it was created, its alerts' data) stays.
  const { additionalData, incidentNumber, createdTimeUtc } = incident.properties;
  incident.properties = {
    ...(additionalData && { additionalData }),
    ...(incidentNumber !== undefined && { incidentNumber }),
    ...(createdTimeUtc !== undefined && { createdTimeUtc }),
    ...properties,
    title: properties.title,
    severity: properties.severity,
    status: properties.status,
    labels: (properties.labels ?? []).map((l) => ({ labelName: l.labelName, labelType: 'User' })),
  };
  incident.etag = `"${Number(incident.etag.replace(/"/g, '')) + 1}"`;
  incident.properties.lastModifiedTimeUtc = new Date().toISOString();
  return { status: 200, body: view(incident) };
}

function putComment(incident: SandboxIncident, commentId: string, request: SandboxRequest): SandboxAnswer {
  const message = (request.body as { properties?: { message?: unknown } } | undefined)?.properties?.message;
  if (typeof message !== 'string' || message === '') return apiError(400, 'BadRequest', 'properties.message is required');
  const now = new Date().toISOString();
  const existing = incident.comments.get(commentId.toLowerCase());
  const comment = {
    id: `${incident.id}/comments/${commentId}`,
    name: commentId,
    properties: { message, createdTimeUtc: existing?.properties.createdTimeUtc ?? now, lastModifiedTimeUtc: now },
  };
  incident.comments.set(commentId.toLowerCase(), comment);
  return { status: existing ? 200 : 201, body: comment };
}

/**
 * A workspace's incidents, newest change first, in pages of `$top` (ARM's default 50) linked by `nextLink`. The filter
 * understood is the one the engine sends (a change time, and optionally severities); any other is refused, so a client
 * that asks for more than the sandbox knows fails here rather than passing on what it did not filter.
 */
function listIncidents(tenant: SandboxTenant, workspacePath: string, request: SandboxRequest): SandboxAnswer {
  if (!request.query.get('api-version'))
    return apiError(400, 'MissingApiVersionParameter', 'The api-version query parameter (?api-version=) is required for all requests.');
  const filter = parseFilter(request.query.get('$filter') ?? '');
  if (!filter) return apiError(400, 'BadRequest', `$filter not understood: ${request.query.get('$filter')}`);
  const orderBy = request.query.get('$orderby');
  if (orderBy !== null && orderBy !== 'properties/lastModifiedTimeUtc desc') return apiError(400, 'BadRequest', `$orderby not understood: ${orderBy}`);
  const top = Number(request.query.get('$top') ?? 50);
  if (!Number.isInteger(top) || top < 1 || top > 1000) return apiError(400, 'BadRequest', '$top must be from 1 to 1000');
  const prefix = `${workspacePath.toLowerCase()}/`;
  const changed = (incident: SandboxIncident) => incident.properties.lastModifiedTimeUtc ?? '';
  const listed = [...tenant.incidents.entries()]
    .filter(
      ([id, incident]) =>
        id.startsWith(prefix) && changed(incident) >= filter.since && (!filter.severities || filter.severities.includes(incident.properties.severity)),
    )
    .map(([, incident]) => incident)
    .sort((a, b) => changed(b).localeCompare(changed(a)));
  return pageOf(listed.map(view), Math.min(top, tenant.armPageSize), request, { param: '$skipToken', link: 'nextLink' });
}

/** `properties/lastModifiedTimeUtc ge <instant>[ and (properties/severity eq '<s>'[ or …])]`, or undefined. */
function parseFilter(text: string): { since: string; severities?: string[] } | undefined {
  const match = /^properties\/lastModifiedTimeUtc ge (\S+)(?: and \((.+)\))?$/.exec(text);
  const since = match?.[1] === undefined ? Number.NaN : Date.parse(match[1]);
  if (!match || Number.isNaN(since)) return undefined;
  if (match[2] === undefined) return { since: new Date(since).toISOString() };
  const severities = match[2].split(' or ').map((clause) => /^properties\/severity eq '(\w+)'$/.exec(clause)?.[1]);
  return severities.every((s) => s !== undefined) ? { since: new Date(since).toISOString(), severities } : undefined;
}
