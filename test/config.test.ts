import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defenderScopeFor, scopeFor } from '../shared/cloud';
import { CONFIG_SETTINGS, PLATFORM_SETTINGS, readConfig } from '../shared/config';
import { DEFENDER_APIS } from '../shared/coordination/pacer';
import { SWEEP_NAMES, SWEEPS } from '../shared/sweeps/catalogue';

const base = { AZURE_TENANT_ID: '5f1c7a3e-0b2d-4e6f-8a9b-1c2d3e4f5a6b', RESPONDER_AUDIENCE: 'api://x' };

describe('cloud endpoints', () => {
  it('start from the AZURE_CLOUD preset', () => {
    expect(readConfig(base)).toMatchObject({
      cloud: 'AzurePublicCloud',
      authorityHost: 'https://login.microsoftonline.com',
      endpoints: { graph: 'https://graph.microsoft.com', defender: 'https://api.security.microsoft.com', arm: 'https://management.azure.com' },
    });
    expect(readConfig({ ...base, AZURE_CLOUD: 'azureusgovernmentdod' })).toMatchObject({
      cloud: 'AzureUSGovernmentDoD',
      authorityHost: 'https://login.microsoftonline.us',
      endpoints: {
        graph: 'https://dod-graph.microsoft.us',
        defender: 'https://api-gov.securitycenter.microsoft.us',
        arm: 'https://management.usgovcloudapi.net',
      },
      issuers: ['https://login.microsoftonline.us/5f1c7a3e-0b2d-4e6f-8a9b-1c2d3e4f5a6b/v2.0', 'https://sts.windows.net/5f1c7a3e-0b2d-4e6f-8a9b-1c2d3e4f5a6b/'],
    });
    expect(readConfig({ ...base, AZURE_CLOUD: 'AzureChinaCloud' }).endpoints.defender).toBeUndefined();
  });

  it('take each override over the preset, and refuse what is not an https origin', () => {
    const config = readConfig({ ...base, AZURE_CLOUD: 'AzureUSGovernment', GRAPH_ENDPOINT: 'https://127.0.0.1:8443/', DEFENDER_ENDPOINT: 'http://plain' });
    expect(config.endpoints.graph).toBe('https://127.0.0.1:8443');
    expect(config.problems).toEqual(['DEFENDER_ENDPOINT must be an https origin such as https://api-gov.securitycenter.microsoft.us, got "http://plain"']);
    expect(readConfig({ ...base, AZURE_CLOUD: 'Mars' }).problems).toEqual([
      'AZURE_CLOUD must be one of AzurePublicCloud, AzureUSGovernment, AzureUSGovernmentDoD, AzureChinaCloud, got "Mars"',
    ]);
  });

  it('derive token scopes, with Defender public hosts sharing one audience', () => {
    expect(scopeFor('https://graph.microsoft.us')).toBe('https://graph.microsoft.us/.default');
    expect(defenderScopeFor('https://api.security.microsoft.com')).toBe('https://api.securitycenter.microsoft.com/.default');
    expect(defenderScopeFor('https://eu.api.security.microsoft.com')).toBe('https://api.securitycenter.microsoft.com/.default');
    expect(defenderScopeFor('https://api-gov.securitycenter.microsoft.us')).toBe('https://api-gov.securitycenter.microsoft.us/.default');
  });
});

describe('the queue and ledger settings', () => {
  const sb = 'Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=TEST-ONLY';
  it('read the Service Bus trigger’s own settings: a connection string, or the namespace for managed identity (which wins)', () => {
    expect(readConfig({ ...base, ServiceBusConnection: sb }).serviceBus).toEqual({ connectionString: sb });
    expect(
      readConfig({ ...base, ServiceBusConnection: sb, ServiceBusConnection__fullyQualifiedNamespace: 'contoso.servicebus.windows.net' }).serviceBus,
    ).toEqual({ fullyQualifiedNamespace: 'contoso.servicebus.windows.net' });
    expect(readConfig(base).serviceBus).toBeUndefined();
    expect(readConfig({ ...base, ServiceBusConnection: 'not a connection string' }).problems).toEqual([expect.stringMatching(/^ServiceBusConnection must be/)]);
    expect(readConfig({ ...base, ServiceBusConnection__fullyQualifiedNamespace: 'sb://x/' }).problems).toEqual([
      expect.stringMatching(/^ServiceBusConnection__fullyQualifiedNamespace must be a host name/),
    ]);
  });

  it('read AzureWebJobsStorage as a connection string, Azurite’s shorthand, or an identity-based table endpoint', () => {
    expect(readConfig({ ...base, AzureWebJobsStorage: 'UseDevelopmentStorage=true' }).storage).toEqual({ connectionString: 'UseDevelopmentStorage=true' });
    expect(readConfig({ ...base, AzureWebJobsStorage__accountName: 'contosoresp' }).storage).toEqual({
      tableServiceUri: 'https://contosoresp.table.core.windows.net',
    });
    expect(readConfig({ ...base, AzureWebJobsStorage__tableServiceUri: 'https://x.table.core.usgovcloudapi.net' }).storage).toEqual({
      tableServiceUri: 'https://x.table.core.usgovcloudapi.net',
    });
    expect(readConfig({ ...base, AzureWebJobsStorage: 'nonsense' }).problems).toEqual([expect.stringMatching(/^AzureWebJobsStorage must be/)]);
    expect(readConfig({ ...base, RESPONDER_LEDGER_TABLE: 'my-table' }).problems).toEqual([expect.stringMatching(/^RESPONDER_LEDGER_TABLE must be/)]);
    expect(readConfig(base).ledgerTable).toBe('actionledger');
  });

  it('refuse to run in Azure on the in-memory twins, which would lose every action at the next restart', () => {
    const problems = readConfig({ ...base, WEBSITE_INSTANCE_ID: 'abc' }).problems;
    expect(problems).toEqual([
      expect.stringMatching(/ServiceBusConnection.*no durable queue/),
      expect.stringMatching(/AzureWebJobsStorage.*no durable ledger/),
    ]);
    expect(readConfig({ ...base, WEBSITE_INSTANCE_ID: 'abc', ServiceBusConnection: sb, AzureWebJobsStorage: 'UseDevelopmentStorage=true' }).problems).toEqual(
      [],
    );
  });
});

describe('the pipeline tuning settings', () => {
  it('read API budgets, polling, lease and retry base, and name what is wrong', () => {
    const tuned = readConfig({
      ...base,
      RESPONDER_RATE_LIMITS: 'defender=100/1s; idprotection=off',
      RESPONDER_FOLLOW_UP_SECONDS: '0.5',
      RESPONDER_RUNNING_LEASE_SECONDS: '60',
      RESPONDER_RETRY_BASE_SECONDS: '0.17',
    });
    expect(tuned.problems).toEqual([]);
    for (const api of DEFENDER_APIS) expect(tuned.rateLimits[api]).toEqual([{ max: 100, windowMs: 1000 }]);
    expect(tuned.rateLimits.idprotection).toEqual([]);
    expect(tuned.rateLimits['graph-writes']).toEqual([{ max: 3000, windowMs: 150_000 }]);
    expect([tuned.followUpMs, tuned.runningLeaseMs, tuned.retryBaseMs]).toEqual([500, 60_000, 170]);
    expect(
      readConfig({ ...base, RESPONDER_RATE_LIMITS: 'mde=1/1s; defender=fast', RESPONDER_FOLLOW_UP_SECONDS: 'soon', RESPONDER_RUNNING_LEASE_SECONDS: '0' })
        .problems,
    ).toEqual([
      'RESPONDER_RATE_LIMITS: "mde=1/1s" must be <api>=<budgets> with api one of defender, defender-machines, defender-machine, defender-machine-actions, defender-isolate, defender-unisolate, graph-writes, idprotection',
      'RESPONDER_RATE_LIMITS: defender: "fast" is not a budget such as 100/60s or 1500/1h',
      'RESPONDER_FOLLOW_UP_SECONDS must be a number of seconds between 0.1 and 3600, got "soon"',
      'RESPONDER_RUNNING_LEASE_SECONDS must be a number of seconds between 1 and 3600, got "0"',
    ]);
  });

  it('read the workspaces missedIncidents lists, and how far back it looks, naming what is not a workspace', () => {
    const workspace =
      '/subscriptions/0b8a3f7e-1c55-4a1e-9d5b-2f0c6c1b7d21/resourceGroups/rg-siem/providers/Microsoft.OperationalInsights/workspaces/law-sentinel';
    const read = readConfig({
      ...base,
      RESPONDER_SENTINEL_WORKSPACES: ` ${workspace}/ , ${workspace.replace('law-sentinel', 'law-emea')}`,
      RESPONDER_SWEEP_MISSEDINCIDENTS_HOURS: '6',
    });
    expect(read.problems).toEqual([]);
    expect(read.workspaces.map((w) => w.workspaceName)).toEqual(['law-sentinel', 'law-emea']);
    expect(read.missedLookBackMs).toBe(6 * 3_600_000);
    expect(readConfig(base)).toMatchObject({ workspaces: [], missedLookBackMs: undefined });
    expect(
      readConfig({
        ...base,
        RESPONDER_SENTINEL_WORKSPACES: `${workspace}/providers/Microsoft.SecurityInsights/Incidents/x`,
        RESPONDER_SWEEP_MISSEDINCIDENTS_HOURS: '0',
      }).problems,
    ).toEqual([
      expect.stringMatching(/^RESPONDER_SENTINEL_WORKSPACES: ".+Incidents\/x" is not a workspace's ARM id/),
      'RESPONDER_SWEEP_MISSEDINCIDENTS_HOURS must be a number of hours between 1 and 168, got "0"',
    ]);
  });

  it('read a workspace named twice, in any case, once: missedIncidents would list it twice and count its incidents twice', () => {
    const workspace =
      '/subscriptions/0b8a3f7e-1c55-4a1e-9d5b-2f0c6c1b7d21/resourceGroups/rg-siem/providers/Microsoft.OperationalInsights/workspaces/law-sentinel';
    const read = readConfig({
      ...base,
      RESPONDER_SENTINEL_WORKSPACES: `${workspace},${workspace.toUpperCase().replace('/SUBSCRIPTIONS/', '/subscriptions/')}/`,
    });
    expect(read.problems).toEqual([]);
    expect(read.workspaces.map((w) => w.workspaceName)).toEqual(['law-sentinel']);
  });

  it('pace each Defender API apart: `defender=…` sets them all, and an entry for one after it wins', () => {
    expect(readConfig(base).rateLimits['defender-isolate']).toEqual([
      { max: 100, windowMs: 60_000 },
      { max: 1500, windowMs: 3_600_000 },
    ]);
    const { rateLimits, problems } = readConfig({ ...base, RESPONDER_RATE_LIMITS: 'defender-machine=5/1s; defender=20/1s; defender-isolate=10/1s+50/1m' });
    expect(problems).toEqual([]);
    expect(Object.fromEntries(DEFENDER_APIS.map((api) => [api, rateLimits[api]]))).toEqual({
      'defender-machines': [{ max: 20, windowMs: 1000 }],
      'defender-machine': [{ max: 20, windowMs: 1000 }],
      'defender-machine-actions': [{ max: 20, windowMs: 1000 }],
      'defender-isolate': [
        { max: 10, windowMs: 1000 },
        { max: 50, windowMs: 60_000 },
      ],
      'defender-unisolate': [{ max: 20, windowMs: 1000 }],
    });
    expect(readConfig({ ...base, RESPONDER_RATE_LIMITS: 'defender=off; defender-isolate=1/1s' }).rateLimits['defender-machine-actions']).toEqual([]);
  });

  it('read a time scale for drills, 1 unless set, and refuse one that would slow time down', () => {
    expect(readConfig(base).timeScale).toBe(1);
    expect(readConfig({ ...base, RESPONDER_TIME_SCALE: '6' }).timeScale).toBe(6);
    expect(readConfig({ ...base, RESPONDER_TIME_SCALE: '0.5' }).problems).toEqual(['RESPONDER_TIME_SCALE must be a number from 1 to 3600, got "0.5"']);
    expect(readConfig({ ...base, RESPONDER_TIME_SCALE: '6', WEBSITE_INSTANCE_ID: 'abc' }).problems).toContain(
      'RESPONDER_TIME_SCALE is for drills on the sandbox: it must be 1 (or unset) in Azure',
    );
  });
});

describe('the list of settings', () => {
  /** Every name readConfig looks up in `env`, whether or not it is set. */
  const namesRead = (env: Record<string, string>): Set<string> => {
    const read = new Set<string>();
    readConfig(
      new Proxy(env, {
        get: (target, name) => {
          if (typeof name === 'string') read.add(name);
          return target[name as string];
        },
      }),
    );
    return read;
  };

  it('is every setting readConfig reads, platform settings apart', () => {
    // Outside Azure, then in Azure (which reads WEBSITE_AUTH_ENABLED too); with nothing else set, no read short-circuits.
    const read = new Set([...namesRead({}), ...namesRead({ WEBSITE_INSTANCE_ID: 'abc' })]);
    expect([...read].filter((name) => !(PLATFORM_SETTINGS as readonly string[]).includes(name)).sort()).toEqual([...CONFIG_SETTINGS].sort());
    expect([...read].filter((name) => (PLATFORM_SETTINGS as readonly string[]).includes(name)).sort()).toEqual([...PLATFORM_SETTINGS].sort());
  });

  it("are all in local.settings.sample.json, with the sweeps' schedules and the risk hub, at their defaults", () => {
    const sample = JSON.parse(readFileSync(path.join(__dirname, '../local.settings.sample.json'), 'utf8')) as { Values: Record<string, string> };
    const names = [...CONFIG_SETTINGS, ...SWEEP_NAMES.map((name) => SWEEPS[name].setting), 'RESPONDER_RISK_EVENT_HUB', 'EventHubConnection'];
    expect(names.filter((name) => !(name in sample.Values))).toEqual([]);
    for (const name of SWEEP_NAMES) expect(sample.Values[SWEEPS[name].setting]).toBe(SWEEPS[name].schedule);
    expect(readConfig({ ...sample.Values, AZURE_TENANT_ID: base.AZURE_TENANT_ID }).problems).toEqual([]);
  });
});
