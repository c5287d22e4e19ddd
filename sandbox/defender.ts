import { randomUUID } from 'node:crypto';
import { apiError, pageOf, slidingQuota, type Route, type SandboxAnswer, type SandboxRequest } from './routes';
import { DEFENDER_APIS, defenderRouteOf, type DefenderApiName, type SandboxMachine, type SandboxMachineAction, type SandboxTenant } from './tenant';

/**
 * The Defender for Endpoint endpoints the engine uses (reference/defender.md), with the behaviours that decide the
 * design: isolate answers 201 with a Pending machine action that completes later; a second isolate or release while
 * one is pending answers 400 ActiveRequestAlreadyExists; a machines filter that matches nothing answers 404; more than
 * an API's quota of calls per window answers 429 with Retry-After, each API counted apart; body field names are
 * case-sensitive.
 */
export function defenderRoutes(tenant: SandboxTenant): Route {
  const quotas = new Map(
    DEFENDER_APIS.map((api) => [
      api,
      slidingQuota(
        () => tenant.now(),
        () => tenant.defenderQuotas[api],
        'API calls quota exceeded',
      ),
    ]),
  );
  return (request) => {
    if (!request.path.startsWith('/api/')) return undefined;
    const found = defenderRouteOf(request.method, request.path);
    if (!found) return undefined;
    const throttled = quotas.get(found.name)?.();
    if (throttled) return throttled;
    tenant.advance();
    return ANSWERS[found.name](tenant, request, found.match);
  };
}

/** Which Defender API a call is to (its quota's name), or undefined when the sandbox serves no such API. */
export function defenderApiOf(method: string, path: string): DefenderApiName | undefined {
  return defenderRouteOf(method, path)?.name;
}

type Answer = (tenant: SandboxTenant, request: SandboxRequest, match: RegExpExecArray) => SandboxAnswer;

/** How the sandbox answers each Defender API (DEFENDER_ROUTES says which request calls which). */
const ANSWERS: Record<DefenderApiName, Answer> = {
  'defender-machines': findMachines,
  'defender-machine': (tenant, _request, match) => {
    const machine = tenant.machines.get(decodeURIComponent(match[1] as string).toLowerCase());
    return machine ? { status: 200, body: view(machine) } : apiError(404, 'ResourceNotFound', `Machine ${match[1]} was not found`);
  },
  'defender-isolate': (tenant, request, match) => post(tenant, request, decodeURIComponent(match[1] as string).toLowerCase(), 'Isolate'),
  'defender-unisolate': (tenant, request, match) => post(tenant, request, decodeURIComponent(match[1] as string).toLowerCase(), 'Unisolate'),
  'defender-machine-actions': (tenant, request) => {
    const text = request.query.get('$filter') ?? '';
    const terms = text === '' ? [] : equalities(text, ['machineId']);
    if (!terms) return apiError(400, 'InvalidRequest', 'unsupported $filter');
    if (terms.length > 1 && !tenant.defenderAcceptsOr) return apiError(400, 'InvalidRequest', "'or' is not supported in $filter");
    const machineIds = new Set(terms.map(([, value]) => value));
    const all = tenant.machineActions.filter((a) => machineIds.size === 0 || machineIds.has(a.machineId));
    return pageOf(all.map(actionView), tenant.defenderPageSize, request);
  },
  'defender-machine-action': (tenant, _request, match) => {
    const action = tenant.machineActions.find((a) => a.id === match[1]);
    return action ? { status: 200, body: actionView(action) } : apiError(404, 'ResourceNotFound', 'Machine action was not found');
  },
};

function findMachines(tenant: SandboxTenant, request: SandboxRequest): SandboxAnswer {
  const text = request.query.get('$filter') ?? '';
  const prefix = /^startswith\(computerDnsName,'((?:[^']|'')*)'\)$/.exec(text);
  const terms = prefix ? undefined : equalities(text, ['id', 'computerDnsName', 'aadDeviceId']);
  if (!prefix && !terms) return apiError(400, 'InvalidRequest', 'unsupported $filter');
  if (terms && terms.length > 1 && !tenant.defenderAcceptsOr) return apiError(400, 'InvalidRequest', "'or' is not supported in $filter");
  const found = [...tenant.machines.values()].filter((m) =>
    terms
      ? terms.some(([field, value]) => (m[field as 'id' | 'computerDnsName' | 'aadDeviceId'] ?? '').toLowerCase() === value)
      : m.computerDnsName.toLowerCase().startsWith(unquote((prefix as RegExpExecArray)[1] as string)),
  );
  return found.length ? { status: 200, body: { value: found.map(view) } } : apiError(404, 'ResourceNotFound', 'Machines were not found');
}

/** `field eq 'value'`, alone or joined by ` or ` (OData V4), on the fields given: [field, lower-cased value] each, or undefined. */
function equalities(filter: string, fields: readonly string[]): Array<[field: string, value: string]> | undefined {
  const term = new RegExp(`(${fields.join('|')}) eq '((?:[^']|'')*)'(?: or (?=.)|$)`, 'y');
  const found: Array<[string, string]> = [];
  while (term.lastIndex < filter.length) {
    const match = term.exec(filter);
    if (!match) return undefined;
    found.push([match[1] as string, unquote(match[2] as string)]);
  }
  return found.length > 0 ? found : undefined;
}

const unquote = (raw: string): string => raw.replace(/''/g, "'").toLowerCase();

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
