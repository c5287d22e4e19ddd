import { apiError, type Route, type SandboxAnswer, type SandboxRequest } from './routes';
import type { SandboxIncident, SandboxTenant } from './tenant';

const INCIDENT =
  /^(\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.OperationalInsights\/workspaces\/[^/]+\/providers\/Microsoft\.SecurityInsights\/incidents\/[^/]+)(\/comments(?:\/([^/]+))?|\/entities)?$/i;

/**
 * The Sentinel ARM endpoints the engine uses (reference/sentinel.md): read an incident, list its entities, replace it
 * (PUT, guarded by its ETag: a stale one answers 412), and create or rewrite a comment whose id the caller chooses.
 */
export function armRoutes(tenant: SandboxTenant): Route {
  return (request) => {
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
  // The PUT replaces what a caller may write: a field left out (a closed incident's classification) is cleared.
  incident.properties = {
    ...(incident.properties.additionalData && { additionalData: incident.properties.additionalData }),
    ...properties,
    title: properties.title,
    severity: properties.severity,
    status: properties.status,
    labels: (properties.labels ?? []).map((l) => ({ labelName: l.labelName, labelType: 'User' })),
  };
  incident.etag = `"${Number(incident.etag.replace(/"/g, '')) + 1}"`;
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
