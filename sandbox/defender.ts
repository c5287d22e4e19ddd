import { randomUUID } from 'node:crypto';
import { apiError, slidingQuota, type Route, type SandboxAnswer, type SandboxRequest } from './routes';
import type { SandboxMachine, SandboxMachineAction, SandboxTenant } from './tenant';

/**
 * The Defender for Endpoint endpoints the engine uses (reference/defender.md), with the behaviours that decide the
 * design: isolate answers 201 with a Pending machine action that completes later; a second isolate or release while
 * one is pending answers 400 ActiveRequestAlreadyExists; a machines filter that matches nothing answers 404; more than
 * the quota of calls per window answers 429 with Retry-After; body field names are case-sensitive.
 */
export function defenderRoutes(tenant: SandboxTenant): Route {
  const quota = slidingQuota(
    () => tenant.now(),
    () => tenant.defenderQuota,
    'API calls quota exceeded',
  );
  return (request) => {
    if (!request.path.startsWith('/api/')) return undefined;
    const throttled = quota();
    if (throttled) return throttled;
    tenant.advance();
    return route(tenant, request);
  };
}

function route(tenant: SandboxTenant, request: SandboxRequest): SandboxAnswer | undefined {
  const path = request.path;
  let match: RegExpExecArray | null;
  if (path === '/api/machines' && request.method === 'GET') {
    const text = request.query.get('$filter') ?? '';
    const exact = /^(computerDnsName|aadDeviceId) eq '((?:[^']|'')*)'$/.exec(text);
    const prefix = /^startswith\(computerDnsName,'((?:[^']|'')*)'\)$/.exec(text);
    if (!exact && !prefix) return apiError(400, 'InvalidRequest', 'unsupported $filter');
    const unquote = (raw: string) => raw.replace(/''/g, "'").toLowerCase();
    const found = [...tenant.machines.values()].filter((m) =>
      exact
        ? (m[exact[1] as 'computerDnsName' | 'aadDeviceId'] ?? '').toLowerCase() === unquote(exact[2] as string)
        : m.computerDnsName.toLowerCase().startsWith(unquote((prefix as RegExpExecArray)[1] as string)),
    );
    return found.length ? { status: 200, body: { value: found.map(view) } } : apiError(404, 'ResourceNotFound', 'Machines were not found');
  }
  if ((match = /^\/api\/machines\/([^/]+)$/.exec(path)) && request.method === 'GET') {
    const machine = tenant.machines.get(decodeURIComponent(match[1] as string).toLowerCase());
    return machine ? { status: 200, body: view(machine) } : apiError(404, 'ResourceNotFound', `Machine ${match[1]} was not found`);
  }
  if ((match = /^\/api\/machines\/([^/]+)\/(isolate|unisolate)$/.exec(path)) && request.method === 'POST') {
    return post(tenant, request, decodeURIComponent(match[1] as string).toLowerCase(), match[2] === 'isolate' ? 'Isolate' : 'Unisolate');
  }
  if (path === '/api/machineactions' && request.method === 'GET') {
    const machineId = /^machineId eq '([0-9a-f]{40})'$/i.exec(request.query.get('$filter') ?? '')?.[1]?.toLowerCase();
    const value = tenant.machineActions.filter((a) => machineId === undefined || a.machineId === machineId).map(actionView);
    return { status: 200, body: { value } };
  }
  if ((match = /^\/api\/machineactions\/([^/]+)$/.exec(path)) && request.method === 'GET') {
    const action = tenant.machineActions.find((a) => a.id === match?.[1]);
    return action ? { status: 200, body: actionView(action) } : apiError(404, 'ResourceNotFound', 'Machine action was not found');
  }
  return undefined;
}

function post(tenant: SandboxTenant, request: SandboxRequest, machineId: string, type: 'Isolate' | 'Unisolate'): SandboxAnswer {
  const machine = tenant.machines.get(machineId);
  if (!machine) return apiError(404, 'ResourceNotFound', `Machine ${machineId} was not found`);
  const body = request.body as { Comment?: unknown; IsolationType?: unknown } | undefined;
  if (typeof body?.Comment !== 'string' || body.Comment === '') return apiError(400, 'InvalidRequestBody', 'Comment is required');
  if (type === 'Isolate' && body.IsolationType !== undefined && body.IsolationType !== 'Full' && body.IsolationType !== 'Selective') {
    return apiError(400, 'InvalidRequestBody', 'IsolationType must be Full or Selective');
  }
  if (tenant.machineActions.some((a) => a.machineId === machineId && (a.status === 'Pending' || a.status === 'InProgress'))) {
    return apiError(400, 'ActiveRequestAlreadyExists', 'Action is already in progress');
  }
  const at = new Date(tenant.now()).toISOString();
  const action: SandboxMachineAction = {
    id: randomUUID(),
    type,
    status: 'Pending',
    machineId,
    computerDnsName: machine.computerDnsName,
    requestor: 'sandbox-managed-identity',
    requestorComment: body.Comment,
    ...(type === 'Isolate' && { isolationType: (body.IsolationType as 'Full' | 'Selective' | undefined) ?? 'Full' }),
    creationDateTimeUtc: at,
    lastUpdateDateTimeUtc: at,
    endsAs: 'Succeeded',
  };
  tenant.machineActions.push(action);
  tenant.advance();
  return { status: 201, body: actionView(action) };
}

function view(machine: SandboxMachine): Record<string, unknown> {
  const { isolated: _isolated, ...rest } = machine;
  return rest;
}

function actionView(action: SandboxMachineAction): Record<string, unknown> {
  const { endsAs: _endsAs, ...rest } = action;
  return rest;
}
