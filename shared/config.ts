import { runningInAzure } from './auth/caller';
import { parseBudgets, type Budget } from './coordination/budget';
import { DEFAULT_API_BUDGETS, everyDefenderApi, PACED_APIS, type PacedApi } from './coordination/pacer';
import { CLOUD_PRESETS, CLOUDS, type CloudEndpoints, type CloudName } from './cloud';
import { ConfigError } from './errors';
import type { Mode } from './policy/schema';
import { isGuid, parseWorkspaceArmId, sameWorkspace, type WorkspaceRef } from './signals/identifiers';

/**
 * Every app setting the engine reads, parsed and checked in one place. Read once per process (lazily: cold start
 * matters); tests build their own with `readConfig(env)`. docs/configuration.md mirrors this file.
 */
export interface ResponderConfig {
  /** Entra tenant whose tokens are accepted (AZURE_TENANT_ID). */
  tenantId: string | undefined;
  /** AZURE_CLOUD: the preset the endpoints below start from. */
  cloud: CloudName;
  /** AZURE_AUTHORITY_HOST, without a trailing slash: `https://login.microsoftonline.us` for US Government. */
  authorityHost: string;
  /** GRAPH_ENDPOINT, DEFENDER_ENDPOINT, ARM_ENDPOINT (origins), over the cloud's preset. */
  endpoints: Omit<CloudEndpoints, 'authorityHost'>;
  /** RESPONDER_AUDIENCE: the engine's app ID URI and/or client id, comma-separated. */
  audiences: string[];
  /** RESPONDER_TOKEN_ISSUERS: overrides the two derived issuers (v2 and v1), comma-separated. */
  issuers: string[];
  /** RESPONDER_AUTH: `entra` validates bearer tokens itself; `easyauth` trusts App Service Authentication's header. */
  auth: 'entra' | 'easyauth';
  /** App Service Authentication is in front of the app (App Service sets WEBSITE_AUTH_ENABLED=True, read-only). */
  easyAuthEnabled: boolean;
  /** RESPONDER_MODE: `audit` forces audit over any policy; `enforce` (default) lets the policy decide. */
  modeOverride: Mode;
  /** RESPONDER_POLICY (inline YAML) or RESPONDER_POLICY_PATH (a file); else the built-in default policy. */
  policyText: string | undefined;
  policyPath: string | undefined;
  /** RESPONDER_IDENTITY_OBJECT_IDS: the engine's own identities (managed identity object id), always protected. */
  engineIdentities: string[];
  /** RESPONDER_ENRICHMENT: `on` (default) reads user risk, privilege, groups and device data before deciding. */
  enrichment: boolean;
  /** RESPONDER_MAX_BODY_BYTES: requests above it get 413. */
  maxBodyBytes: number;
  /** LOG_LEVEL: pino level. */
  logLevel: string;
  /**
   * The actions queue: `ServiceBusConnection` (a connection string; emulators with `UseDevelopmentEmulator=true`) or
   * `ServiceBusConnection__fullyQualifiedNamespace` (managed identity), the settings the Service Bus trigger reads
   * too. Unset: the embedded, in-memory queue, which only the local host may use.
   */
  serviceBus: { connectionString: string } | { fullyQualifiedNamespace: string } | undefined;
  /**
   * The action ledger's table: `AzureWebJobsStorage` (a connection string; `UseDevelopmentStorage=true` is Azurite) or
   * `AzureWebJobsStorage__tableServiceUri` / `AzureWebJobsStorage__accountName` (managed identity). Unset: in memory.
   */
  storage: { connectionString: string } | { tableServiceUri: string } | undefined;
  /** RESPONDER_LEDGER_TABLE: the ledger's table name (default `actionledger`); one per engine sharing an account. */
  ledgerTable: string;
  /**
   * RESPONDER_RATE_LIMITS: the API budgets the engine paces itself to, over the documented defaults, e.g.
   * `defender-isolate=100/60s+1500/1h; idprotection=1/1s` (`off` paces nothing for that API). `defender=…` sets every
   * Defender API at once, and an entry for one of them after it wins. Benchmarks compress them.
   */
  rateLimits: Record<PacedApi, Budget[]>;
  /** RESPONDER_FOLLOW_UP_SECONDS: wait before reading a pending Defender machine action again (default 30). */
  followUpMs: number | undefined;
  /**
   * RESPONDER_RUNNING_LEASE_SECONDS: how long a claimed action stays its worker's without a renewal (default 60; the
   * worker renews it every third of it while it runs): about how long a crashed instance's actions wait for a takeover.
   */
  runningLeaseMs: number | undefined;
  /** RESPONDER_RETRY_BASE_SECONDS: the retry backoff's first ceiling (default 10; doubles per attempt, capped at 15 min). */
  retryBaseMs: number | undefined;
  /** RESPONDER_TIME_SCALE: every engine duration divided by this, for drills and benchmarks on the sandbox (shared/timeScale.ts); default 1. */
  timeScale: number;
  /**
   * RESPONDER_SENTINEL_WORKSPACES: the Sentinel workspaces' ARM ids, comma-separated, that the missedIncidents sweep
   * lists incidents in (none: that sweep has nothing to read).
   */
  workspaces: WorkspaceRef[];
  /** RESPONDER_SWEEP_MISSEDINCIDENTS_HOURS: how far back missedIncidents looks (default 24 hours). */
  missedLookBackMs: number | undefined;
  /**
   * APPLICATIONINSIGHTS_CONNECTION_STRING: where metrics go (Application Insights), with Entra auth; `clientId` from
   * APPLICATIONINSIGHTS_AUTHENTICATION_STRING (`ClientId=…;Authorization=AAD`) names the user-assigned identity.
   * Unset: nothing is exported. Never a problem: telemetry that cannot be sent must not stop containment.
   */
  metrics: { connectionString: string; clientId?: string } | undefined;
  /** Problems found while reading; non-empty means the engine must not act (health says why, routes answer 503). */
  problems: string[];
}

/**
 * Every app setting readConfig reads, by name (a test holds it to what readConfig reads). infra/main.bicep sets each one
 * or leaves it to its default, a test checks that too; the App Service platform's own (runningInAzure, WEBSITE_*) are
 * not among them.
 */
export const CONFIG_SETTINGS = [
  'AZURE_TENANT_ID',
  'AZURE_CLOUD',
  'AZURE_AUTHORITY_HOST',
  'GRAPH_ENDPOINT',
  'DEFENDER_ENDPOINT',
  'ARM_ENDPOINT',
  'RESPONDER_AUDIENCE',
  'RESPONDER_TOKEN_ISSUERS',
  'RESPONDER_AUTH',
  'RESPONDER_MODE',
  'RESPONDER_POLICY',
  'RESPONDER_POLICY_PATH',
  'RESPONDER_IDENTITY_OBJECT_IDS',
  'RESPONDER_ENRICHMENT',
  'RESPONDER_MAX_BODY_BYTES',
  'LOG_LEVEL',
  'ServiceBusConnection__fullyQualifiedNamespace',
  'ServiceBusConnection',
  'AzureWebJobsStorage__tableServiceUri',
  'AzureWebJobsStorage__accountName',
  'AzureWebJobsStorage',
  'RESPONDER_LEDGER_TABLE',
  'RESPONDER_RATE_LIMITS',
  'RESPONDER_FOLLOW_UP_SECONDS',
  'RESPONDER_RUNNING_LEASE_SECONDS',
  'RESPONDER_RETRY_BASE_SECONDS',
  'RESPONDER_TIME_SCALE',
  'RESPONDER_SENTINEL_WORKSPACES',
  'RESPONDER_SWEEP_MISSEDINCIDENTS_HOURS',
  'APPLICATIONINSIGHTS_CONNECTION_STRING',
  'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
] as const;

/** The settings App Service itself sets, which readConfig reads to know it runs in Azure (shared/auth/caller.ts). */
export const PLATFORM_SETTINGS = ['WEBSITE_INSTANCE_ID', 'WEBSITE_SITE_NAME', 'WEBSITE_OWNER_NAME', 'WEBSITE_AUTH_ENABLED'] as const;

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function readConfig(env: NodeJS.ProcessEnv = process.env): ResponderConfig {
  const problems: string[] = [];
  const list = (name: string): string[] =>
    (env[name] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);

  const tenantId = env.AZURE_TENANT_ID?.trim() || undefined;
  if (tenantId === undefined) problems.push('AZURE_TENANT_ID is not set: no token can be validated');
  else if (!isGuid(tenantId)) problems.push(`AZURE_TENANT_ID must be the tenant's GUID, got ${JSON.stringify(tenantId)}`);

  const cloudText = env.AZURE_CLOUD?.trim() || 'AzurePublicCloud';
  const cloud = CLOUDS.find((c) => c.toLowerCase() === cloudText.toLowerCase());
  if (!cloud) problems.push(`AZURE_CLOUD must be one of ${CLOUDS.join(', ')}, got ${JSON.stringify(cloudText)}`);
  const preset = CLOUD_PRESETS[cloud ?? 'AzurePublicCloud'];
  const origin = (name: string, fallback: string | undefined, example: string): string | undefined => {
    const value = (env[name]?.trim() || fallback)?.replace(/\/+$/, '');
    if (value !== undefined && !/^https:\/\/[^/\s]+$/.test(value))
      problems.push(`${name} must be an https origin such as ${example}, got ${JSON.stringify(value)}`);
    return value;
  };
  const authorityHost = origin('AZURE_AUTHORITY_HOST', preset.authorityHost, 'https://login.microsoftonline.us') as string;
  const endpoints = {
    graph: origin('GRAPH_ENDPOINT', preset.graph, 'https://graph.microsoft.us') as string,
    defender: origin('DEFENDER_ENDPOINT', preset.defender, 'https://api-gov.securitycenter.microsoft.us'),
    arm: origin('ARM_ENDPOINT', preset.arm, 'https://management.usgovcloudapi.net') as string,
  };

  const audiences = list('RESPONDER_AUDIENCE');
  if (audiences.length === 0) problems.push('RESPONDER_AUDIENCE is not set: the app ID URI (api://…) and/or client id callers request tokens for');

  const auth = (env.RESPONDER_AUTH?.trim() || 'entra').toLowerCase();
  if (auth !== 'entra' && auth !== 'easyauth') problems.push(`RESPONDER_AUTH must be entra or easyauth, got ${JSON.stringify(auth)}`);
  // X-MS-CLIENT-PRINCIPAL is trustworthy only behind App Service Authentication, which strips it from outside requests
  // (configure-authentication-user-identities.md): anywhere else, anyone can send it.
  const easyAuthEnabled = runningInAzure(env) && env.WEBSITE_AUTH_ENABLED?.trim().toLowerCase() === 'true';
  if (auth === 'easyauth' && !easyAuthEnabled)
    problems.push(
      'RESPONDER_AUTH=easyauth trusts the X-MS-CLIENT-PRINCIPAL header, which only App Service Authentication can vouch for, and it is not enabled here (WEBSITE_AUTH_ENABLED is not True): use RESPONDER_AUTH=entra',
    );

  const mode = (env.RESPONDER_MODE?.trim() || 'enforce').toLowerCase();
  if (mode !== 'audit' && mode !== 'enforce') problems.push(`RESPONDER_MODE must be audit or enforce, got ${JSON.stringify(mode)}`);

  const enrichment = (env.RESPONDER_ENRICHMENT?.trim() || 'on').toLowerCase();
  if (enrichment !== 'on' && enrichment !== 'off') problems.push(`RESPONDER_ENRICHMENT must be on or off, got ${JSON.stringify(enrichment)}`);

  const engineIdentities = list('RESPONDER_IDENTITY_OBJECT_IDS');
  for (const id of engineIdentities) if (!isGuid(id)) problems.push(`RESPONDER_IDENTITY_OBJECT_IDS: ${JSON.stringify(id)} is not an object id (GUID)`);

  const maxBodyText = env.RESPONDER_MAX_BODY_BYTES?.trim();
  const maxBodyBytes = maxBodyText ? Number(maxBodyText) : DEFAULT_MAX_BODY_BYTES;
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1024 || maxBodyBytes > 64 * 1024 * 1024) {
    problems.push(`RESPONDER_MAX_BODY_BYTES must be a whole number of bytes between 1024 and 67108864, got ${JSON.stringify(maxBodyText)}`);
  }

  const logLevel = (env.LOG_LEVEL?.trim() || 'info').toLowerCase();
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);

  const serviceBus = serviceBusSetting(env, problems);
  const storage = storageSetting(env, problems);
  if (runningInAzure(env)) {
    // In Azure the in-memory twins would lose every action at the next restart: refuse to act instead.
    if (!serviceBus) problems.push('ServiceBusConnection__fullyQualifiedNamespace (or ServiceBusConnection) is not set: actions have no durable queue');
    if (!storage) problems.push('AzureWebJobsStorage is not set: actions have no durable ledger');
  }

  const ledgerTable = env.RESPONDER_LEDGER_TABLE?.trim() || 'actionledger';
  if (!/^[A-Za-z][A-Za-z0-9]{2,62}$/.test(ledgerTable))
    problems.push(`RESPONDER_LEDGER_TABLE must be a table name (3-63 letters and digits, starting with a letter), got ${JSON.stringify(ledgerTable)}`);

  const rateLimits = rateLimitSetting(env.RESPONDER_RATE_LIMITS, problems);
  const followUpMs = durationSetting(env, 'RESPONDER_FOLLOW_UP_SECONDS', 0.1, 3600, problems);
  const runningLeaseMs = durationSetting(env, 'RESPONDER_RUNNING_LEASE_SECONDS', 1, 3600, problems);
  const retryBaseMs = durationSetting(env, 'RESPONDER_RETRY_BASE_SECONDS', 0.1, 600, problems);
  const timeScale = Number(env.RESPONDER_TIME_SCALE?.trim() || '1');
  if (!(timeScale >= 1 && timeScale <= 3600))
    problems.push(`RESPONDER_TIME_SCALE must be a number from 1 to 3600, got ${JSON.stringify(env.RESPONDER_TIME_SCALE)}`);
  // Compressed budgets against a real tenant would call Defender and Graph faster than they allow.
  else if (timeScale !== 1 && runningInAzure(env)) problems.push('RESPONDER_TIME_SCALE is for drills on the sandbox: it must be 1 (or unset) in Azure');

  const workspaces: WorkspaceRef[] = [];
  for (const id of list('RESPONDER_SENTINEL_WORKSPACES')) {
    const workspace = parseWorkspaceArmId(id);
    // ARM ids are case-insensitive: a workspace named twice would be listed, and its incidents counted, twice.
    if (workspace && workspaces.some((w) => sameWorkspace(w, workspace))) continue;
    if (workspace) workspaces.push(workspace);
    else
      problems.push(
        `RESPONDER_SENTINEL_WORKSPACES: ${JSON.stringify(id.slice(0, 300))} is not a workspace's ARM id (/subscriptions/…/resourceGroups/…/providers/Microsoft.OperationalInsights/workspaces/…)`,
      );
  }
  const missedLookBackMs = durationSetting(env, 'RESPONDER_SWEEP_MISSEDINCIDENTS_HOURS', 1, 7 * 24, problems, 3600);

  const issuers = list('RESPONDER_TOKEN_ISSUERS');
  return {
    tenantId,
    cloud: cloud ?? 'AzurePublicCloud',
    authorityHost,
    endpoints,
    audiences,
    issuers: issuers.length || tenantId === undefined ? issuers : defaultIssuers(authorityHost, tenantId),
    auth: auth === 'easyauth' ? 'easyauth' : 'entra',
    easyAuthEnabled,
    modeOverride: mode === 'audit' ? 'audit' : 'enforce',
    policyText: env.RESPONDER_POLICY?.trim() || undefined,
    policyPath: env.RESPONDER_POLICY_PATH?.trim() || undefined,
    engineIdentities: engineIdentities.map((id) => id.toLowerCase()),
    enrichment: enrichment !== 'off',
    maxBodyBytes: Number.isInteger(maxBodyBytes) ? maxBodyBytes : DEFAULT_MAX_BODY_BYTES,
    logLevel: LOG_LEVELS.includes(logLevel) ? logLevel : 'info',
    serviceBus,
    storage,
    ledgerTable,
    rateLimits,
    followUpMs,
    runningLeaseMs,
    retryBaseMs,
    timeScale: timeScale >= 1 && timeScale <= 3600 ? timeScale : 1,
    workspaces,
    missedLookBackMs,
    metrics: metricsSetting(env),
    problems,
  };
}

function metricsSetting(env: NodeJS.ProcessEnv): ResponderConfig['metrics'] {
  const connectionString = env.APPLICATIONINSIGHTS_CONNECTION_STRING?.trim();
  const authentication = env.APPLICATIONINSIGHTS_AUTHENTICATION_STRING ?? '';
  if (!connectionString) return undefined;
  const clientId = /(?:^|;)\s*ClientId=([^;\s]+)/i.exec(authentication)?.[1];
  return { connectionString, ...(clientId && { clientId }) };
}

function serviceBusSetting(env: NodeJS.ProcessEnv, problems: string[]): ResponderConfig['serviceBus'] {
  const namespace = env.ServiceBusConnection__fullyQualifiedNamespace?.trim();
  if (namespace) {
    if (!/^[a-z0-9][a-z0-9.-]*\.[a-z]{2,}$/i.test(namespace))
      problems.push(
        `ServiceBusConnection__fullyQualifiedNamespace must be a host name such as contoso-responder.servicebus.windows.net, got ${JSON.stringify(namespace)}`,
      );
    return { fullyQualifiedNamespace: namespace };
  }
  const connectionString = env.ServiceBusConnection?.trim();
  if (!connectionString) return undefined;
  if (!/(^|;)\s*Endpoint=sb:\/\/[^;]+/i.test(connectionString))
    problems.push('ServiceBusConnection must be a Service Bus connection string (Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…)');
  return { connectionString };
}

function storageSetting(env: NodeJS.ProcessEnv, problems: string[]): ResponderConfig['storage'] {
  const uri = env.AzureWebJobsStorage__tableServiceUri?.trim();
  const account = env.AzureWebJobsStorage__accountName?.trim();
  if (uri || account) {
    const tableServiceUri = uri || `https://${account}.table.core.windows.net`;
    if (!/^https:\/\/[^/\s]+\/?$/.test(tableServiceUri))
      problems.push(
        `AzureWebJobsStorage__tableServiceUri must be an https origin such as https://account.table.core.windows.net, got ${JSON.stringify(tableServiceUri)}`,
      );
    return { tableServiceUri };
  }
  const connectionString = env.AzureWebJobsStorage?.trim();
  if (!connectionString) return undefined;
  if (!/UseDevelopmentStorage=true|AccountName=|TableEndpoint=/i.test(connectionString))
    problems.push('AzureWebJobsStorage must be a storage connection string (AccountName=…;AccountKey=… or UseDevelopmentStorage=true)');
  return { connectionString };
}

/**
 * Entra issues v2 tokens as `{authority}/{tenant}/v2.0` and v1 tokens as `https://sts.windows.net/{tenant}/`
 * (also in US Government), or `https://sts.chinacloudapi.cn/{tenant}/` in the China cloud. Which one a caller gets
 * depends on the app registration's accessTokenAcceptedVersion, so both are accepted.
 */
export function defaultIssuers(authorityHost: string, tenantId: string): string[] {
  const v1Host = /chinacloudapi\.cn|microsoftonline\.cn/.test(authorityHost) ? 'https://sts.chinacloudapi.cn' : 'https://sts.windows.net';
  return [`${authorityHost}/${tenantId}/v2.0`, `${v1Host}/${tenantId}/`];
}

/** The signing keys of the tenant, where jose fetches them (and refreshes them on an unknown `kid`). */
export function signingKeysUrl(config: Pick<ResponderConfig, 'authorityHost' | 'tenantId'>): URL {
  if (config.tenantId === undefined) throw new ConfigError('AZURE_TENANT_ID is not set');
  return new URL(`${config.authorityHost}/${config.tenantId}/discovery/v2.0/keys`);
}

let current: ResponderConfig | undefined;

/** The process's configuration, read on first use. */
export function config(): ResponderConfig {
  current ??= readConfig();
  return current;
}

/** For the local host and tests, which set settings before the first request. */
export function resetConfig(): void {
  current = undefined;
}

/** In RESPONDER_RATE_LIMITS, the budgets for every Defender API at once: Defender documents one limit for each. */
const DEFENDER_SHORTHAND = 'defender';

function rateLimitSetting(text: string | undefined, problems: string[]): Record<PacedApi, Budget[]> {
  const limits = { ...DEFAULT_API_BUDGETS };
  const names = [DEFENDER_SHORTHAND, ...PACED_APIS];
  for (const entry of (text ?? '').split(';').filter((e) => e.trim())) {
    const [name, value] = entry.split('=').map((part) => part.trim()) as [string, string | undefined];
    if (!names.includes(name) || !value) {
      problems.push(`RESPONDER_RATE_LIMITS: ${JSON.stringify(entry.trim())} must be <api>=<budgets> with api one of ${names.join(', ')}`);
      continue;
    }
    try {
      const budgets = value === 'off' ? [] : parseBudgets(value);
      Object.assign(limits, name === DEFENDER_SHORTHAND ? everyDefenderApi(budgets) : { [name]: budgets });
    } catch (error) {
      problems.push(`RESPONDER_RATE_LIMITS: ${name}: ${(error as Error).message}`);
    }
  }
  return limits;
}

/** An optional setting in seconds, as milliseconds; out of range is a problem (and unset). */
function durationSetting(env: NodeJS.ProcessEnv, name: string, min: number, max: number, problems: string[], unitSeconds = 1): number | undefined {
  const text = env[name]?.trim();
  if (!text) return undefined;
  const value = Number(text);
  if (value >= min && value <= max) return value * unitSeconds * 1000;
  problems.push(`${name} must be a number of ${unitSeconds === 3600 ? 'hours' : 'seconds'} between ${min} and ${max}, got ${JSON.stringify(text)}`);
  return undefined;
}
