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

/**
 * Defender for Endpoint over fetch (there is no official JS SDK), with a bearer token from the engine's credential.
 * Body field names are case-sensitive (`Comment`, `IsolationType`). Every failure leaves as an ApiError.
 */
export class DefenderDevices implements Devices {
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

  async findMachines(by: MachineLookup): Promise<Machine[]> {
    const literal = (value: string) => `'${value.replace(/'/g, "''")}'`;
    // startswith is among the filters the machines API documents (exposed-apis-odata-samples.md).
    const filter =
      'aadDeviceId' in by
        ? `aadDeviceId eq ${literal(by.aadDeviceId)}`
        : 'computerDnsName' in by
          ? `computerDnsName eq ${literal(by.computerDnsName)}`
          : `startswith(computerDnsName,${literal(by.computerDnsNameStartsWith)})`;
    try {
      return (await this.request<{ value: Machine[] }>('defender-machines', 'GET', `/api/machines?$filter=${encodeURIComponent(filter)}`)).value;
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return []; // "404 when nothing matches"
      throw error;
    }
  }

  async listMachineActions(machineId: string): Promise<MachineAction[]> {
    const filter = encodeURIComponent(`machineId eq '${machineId.replace(/'/g, "''")}'`);
    const { value } = await this.request<{ value: MachineAction[] }>('defender-machine-actions', 'GET', `/api/machineactions?$filter=${filter}`);
    return [...value].sort((a, b) => b.creationDateTimeUtc.localeCompare(a.creationDateTimeUtc));
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

  /** One call to `api`, paced to that API's own budget. */
  private async request<T>(api: DefenderApi, method: string, path: string, body?: unknown): Promise<T> {
    await this.pace(api);
    let response: Response;
    try {
      const { token } = (await this.credential.getToken(this.scope)) ?? { token: '' };
      response = await fetch(`${this.endpoint}${path}`, {
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
