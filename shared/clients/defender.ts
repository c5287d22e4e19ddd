import type { TokenCredential } from '@azure/identity';
import { defenderScopeFor } from '../cloud';
import type { ResponderConfig } from '../config';
import { ConfigError } from '../errors';
import { ApiError, parseRetryAfter } from './apiError';
import { azureCredential } from './credential';
import type { DefenderApi, Pace } from '../coordination/pacer';

/** Defender for Endpoint's Machine, the fields the engine uses (reference/defender.md). */
export interface Machine {
  id: string;
  computerDnsName: string;
  aadDeviceId: string | null;
  osPlatform?: string;
  healthStatus?: string;
  riskScore?: string;
  exposureLevel?: string;
  machineTags: string[];
  /** `Onboarded`, `CanBeOnboarded`, `Unsupported`, `InsufficientInfo` (the Machine doc spells the field in lower case). */
  onboardingStatus?: string;
  onboardingstatus?: string;
  /** When Defender last received a full report from the device. */
  lastSeen?: string;
  /** Set on a stale record a re-onboarded device left behind: the id of its live record. Not in every API version. */
  mergedIntoMachineId?: string | null;
}

export const FINAL_ACTION_STATES = ['Succeeded', 'Failed', 'TimeOut', 'Cancelled'] as const;

export interface MachineAction {
  id: string;
  type: string;
  status: 'Pending' | 'InProgress' | (typeof FINAL_ACTION_STATES)[number];
  machineId: string;
  requestor?: string;
  requestorComment?: string;
  creationDateTimeUtc: string;
  lastUpdateDateTimeUtc?: string;
}

/** How machines are looked up: exactly by Entra device id or name, or by the start of their name. */
export type MachineLookup = { aadDeviceId: string } | { computerDnsName: string } | { computerDnsNameStartsWith: string };

/** The device port: Defender for Endpoint in production and against the sandbox tenant. */
export interface Devices {
  getMachine(id: string): Promise<Machine | undefined>;
  /** Exact matches only; an empty list when nothing matches (Defender answers 404 then). */
  findMachines(by: MachineLookup): Promise<Machine[]>;
  /** The device's machine actions, newest first. */
  listMachineActions(machineId: string): Promise<MachineAction[]>;
  isolate(machineId: string, comment: string, isolationType: 'Full' | 'Selective'): Promise<MachineAction>;
  unisolate(machineId: string, comment: string): Promise<MachineAction>;
}

/** Reads of many devices in one call each (an OData `or` of equalities), which BatchedDevices coalesces reads into. */
export interface DeviceListReads {
  /** The machines whose `field` equals one of `values`; an empty list when none does. */
  machinesWhere(field: 'id' | 'aadDeviceId', values: readonly string[]): Promise<Machine[]>;
  /** The machine actions of every machine in `machineIds`, all pages, in Defender's order. */
  machineActionsOf(machineIds: readonly string[]): Promise<MachineAction[]>;
}

/**
 * Defender for Endpoint over fetch (there is no official JS SDK), with a bearer token from the engine's credential.
 * Body field names are case-sensitive (`Comment`, `IsolationType`). Every failure leaves as an ApiError.
 */
export class DefenderDevices implements Devices, DeviceListReads {
  constructor(
    private readonly endpoint: string,
    private readonly credential: TokenCredential,
    private readonly scope: string,
    /** Called before every request with the API it calls: Defender's 100/min and 1,500/h per API hold across all instances. */
    private readonly pace: Pace = async () => undefined,
    private readonly timeoutMs = 20_000,
  ) {}

  async getMachine(id: string): Promise<Machine | undefined> {
    try {
      return await this.request<Machine>('defender-machine', 'GET', `/api/machines/${encodeURIComponent(id)}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  findMachines(by: MachineLookup): Promise<Machine[]> {
    if ('aadDeviceId' in by) return this.machinesWhere('aadDeviceId', [by.aadDeviceId]);
    // startswith is among the filters the machines API documents (exposed-apis-odata-samples.md).
    return this.listMachines(
      'computerDnsName' in by ? `computerDnsName eq ${literal(by.computerDnsName)}` : `startswith(computerDnsName,${literal(by.computerDnsNameStartsWith)})`,
    );
  }

  machinesWhere(field: 'id' | 'aadDeviceId', values: readonly string[]): Promise<Machine[]> {
    return this.listMachines(anyOf(field, values));
  }

  async listMachineActions(machineId: string): Promise<MachineAction[]> {
    return newestFirst(await this.machineActionsOf([machineId]));
  }

  machineActionsOf(machineIds: readonly string[]): Promise<MachineAction[]> {
    return this.list('defender-machine-actions', `/api/machineactions?$filter=${encodeURIComponent(anyOf('machineId', machineIds))}`);
  }

  isolate(machineId: string, comment: string, isolationType: 'Full' | 'Selective'): Promise<MachineAction> {
    return this.request('defender-isolate', 'POST', `/api/machines/${encodeURIComponent(machineId)}/isolate`, {
      Comment: comment,
      IsolationType: isolationType,
    });
  }

  unisolate(machineId: string, comment: string): Promise<MachineAction> {
    return this.request('defender-unisolate', 'POST', `/api/machines/${encodeURIComponent(machineId)}/unisolate`, { Comment: comment });
  }

  private async listMachines(filter: string): Promise<Machine[]> {
    try {
      return await this.list<Machine>('defender-machines', `/api/machines?$filter=${encodeURIComponent(filter)}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return []; // "404 when nothing matches"
      throw error;
    }
  }

  /**
   * Every page of a collection. A page's @odata.nextLink is followed on this client's endpoint: the token is never
   * sent to a host the configuration did not name, whatever host the link names.
   */
  private async list<T>(api: DefenderApi, path: string): Promise<T[]> {
    const items: T[] = [];
    let pages = 0;
    for (let next: string | undefined = path; next !== undefined;) {
      // A collection whose links never end (or loop) must not read, and hold, pages without end.
      if (++pages > MAX_PAGES) throw new ApiError('defender', 502, 'TooManyPages', `Defender's ${api} list went on past ${MAX_PAGES} pages`);
      const page: { value: T[]; '@odata.nextLink'?: string } = await this.request(api, 'GET', next);
      items.push(...page.value);
      const link = page['@odata.nextLink'];
      next = link === undefined ? undefined : pathAndQuery(new URL(link, this.endpoint));
    }
    return items;
  }

  /** One call to `api`, paced to that API's own budget (Defender limits calls per API: reference/defender.md). */
  private async request<T>(api: DefenderApi, method: string, path: string, body?: unknown): Promise<T> {
    // The token goes to the configured endpoint only: a path that is not one (a page link's `x:@host/…`) is refused.
    const url = URL.canParse(`${this.endpoint}${path}`) ? new URL(`${this.endpoint}${path}`) : undefined;
    if (!path.startsWith('/') || url?.origin !== new URL(this.endpoint).origin)
      throw new ApiError('defender', 0, undefined, `refused to call ${JSON.stringify(path)}: not a path on ${this.endpoint}`);
    await this.pace(api);
    let response: Response;
    try {
      const { token } = (await this.credential.getToken(this.scope)) ?? { token: '' };
      response = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(body !== undefined && { 'content-type': 'application/json' }) },
        ...(body !== undefined && { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      throw new ApiError('defender', 0, undefined, `no answer from Defender: ${(error as Error).message}`);
    }
    const text = await response.text();
    const json = text ? (JSON.parse(text) as unknown) : undefined;
    if (!response.ok) {
      // {"error":{"code","message","target"}}; target is a correlation id worth keeping.
      const error = (json as { error?: { code?: string; message?: string; target?: string } } | undefined)?.error;
      const message = `${error?.message ?? response.statusText}${error?.target ? ` (correlation ${error.target})` : ''}`;
      throw new ApiError('defender', response.status, error?.code, message, parseRetryAfter(response.headers.get('retry-after')));
    }
    return json as T;
  }
}

/** An OData string literal: quotes doubled. */
const literal = (value: string): string => `'${value.replace(/'/g, "''")}'`;

/** `field eq 'a' or field eq 'b' …`: Defender's API is OData V4, whose `or` joins equalities on a filterable field. */
const anyOf = (field: string, values: readonly string[]): string => values.map((value) => `${field} eq ${literal(value)}`).join(' or ');

/** Only http(s) links have a path that starts with '/': any other scheme's (`x:@host/…`) would name a host after the endpoint's. */
const pathAndQuery = (url: URL): string => (url.protocol === 'https:' || url.protocol === 'http:' ? `${url.pathname}${url.search}` : `${url.href}`);

/** Pages a list read follows at most: Defender's pages hold thousands of records; a link that never ends is a fault. */
export const MAX_PAGES = 50;

/** Machine actions newest first, as the executors read them. */
export function newestFirst(actions: readonly MachineAction[]): MachineAction[] {
  return [...actions].sort((a, b) => b.creationDateTimeUtc.localeCompare(a.creationDateTimeUtc));
}

export async function createDefenderDevices(
  config: Pick<ResponderConfig, 'endpoints' | 'authorityHost' | 'cloud'>,
  pace?: Pace,
  credential?: TokenCredential,
): Promise<DefenderDevices> {
  const endpoint = config.endpoints.defender;
  if (endpoint === undefined)
    throw new ConfigError(`Defender for Endpoint is not available in ${config.cloud}: set DEFENDER_ENDPOINT or remove isolateDevice from the policy`);
  return new DefenderDevices(endpoint, credential ?? (await azureCredential(config.authorityHost)), defenderScopeFor(endpoint), pace);
}
