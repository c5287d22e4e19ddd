import { describe, expect, it } from 'vitest';
import { appSettingNames, declaration, infraFiles, infraTexts, parseBicep, resources, unquote, valueAt, type BicepFile, type BicepResource } from './bicep';

/**
 * What must never regress in infra/, each rule a function over the parsed templates that names what breaks it, run on
 * the real templates (nothing) and on a small bad one (each rule speaks).
 */

/** Keys, SAS and connection strings: written, fetched (listKeys) or handed to the app as a setting. */
const SECRET_PATTERNS: Array<[RegExp, string]> = [
  [/\blist(Keys|ConnectionStrings|AccountSas|ServiceSas)\s*\(/i, 'reads keys'],
  [/AccountKey=/i, 'a storage account key'],
  [/SharedAccessKey(Name)?=/i, 'a shared access key'],
  [/SharedAccessSignature/i, 'a shared access signature'],
  [/Endpoint=sb:\/\//i, 'a Service Bus or Event Hubs connection string'],
  [/DefaultEndpointsProtocol=/i, 'a storage connection string'],
];

function secretsIn(path: string, text: string): string[] {
  return SECRET_PATTERNS.filter(([pattern]) => pattern.test(text)).map(([, what]) => `${path}: ${what}`);
}

/**
 * App settings that would carry a secret: the bare connection names (a connection string), anything named like one.
 * Application Insights' connection string is the exception: it holds an instrumentation key, which is an identifier
 * and sends nothing with local auth disabled (azure-monitor/app/sdk-connection-string.md); the next rule checks that.
 */
const CONNECTION_STRING_SETTING = /^(AzureWebJobsStorage|ServiceBusConnection|EventHubConnection)$|ConnectionString$|CONNECTION_STRING$/i;
const IDENTIFIER_ONLY = new Set(['APPLICATIONINSIGHTS_CONNECTION_STRING']);

function connectionStringSettings(main: BicepFile): string[] {
  return appSettingNames(main)
    .filter((name) => CONNECTION_STRING_SETTING.test(name) && !IDENTIFIER_ONLY.has(name))
    .map((name) => `${main.path}: app setting ${name} is a connection string`);
}

/** Each rule: the resource type it reads, and for a resource of that type, what is wrong with it. */
const RULES: Array<[string, (r: BicepResource) => string[]]> = [
  [
    'Microsoft.Storage/storageAccounts',
    (r) =>
      expectProps(r, {
        'properties.allowSharedKeyAccess': 'false',
        'properties.allowBlobPublicAccess': 'false',
        'properties.minimumTlsVersion': "'TLS1_2'",
        'properties.supportsHttpsTrafficOnly': 'true',
      }),
  ],
  ['Microsoft.ServiceBus/namespaces', (r) => expectProps(r, { 'properties.disableLocalAuth': 'true', 'properties.minimumTlsVersion': "'1.2'" })],
  ['Microsoft.Insights/components', (r) => expectProps(r, { 'properties.DisableLocalAuth': 'true' })],
  [
    'Microsoft.OperationalInsights/workspaces',
    (r) => (valueAt(r.body, 'properties') ? expectProps(r, { 'properties.features.disableLocalAuth': 'true' }) : []),
  ],
  // The risk-log namespace keeps shared keys for the diagnostic setting alone (modules/eventHubs.bicep): TLS still.
  ['Microsoft.EventHub/namespaces', (r) => expectProps(r, { 'properties.minimumTlsVersion': "'1.2'" })],
  [
    'Microsoft.Web/sites',
    (r) => expectProps(r, { 'properties.httpsOnly': 'true', 'properties.siteConfig.minTlsVersion': "'1.2'", 'properties.siteConfig.ftpsState': "'Disabled'" }),
  ],
  ['Microsoft.Web/sites/basicPublishingCredentialsPolicies', (r) => expectProps(r, { 'properties.allow': 'false' })],
  [
    'Microsoft.Authorization/roleAssignments',
    (r) => {
      // Said, never left for the directory to find: identities, or (for the analysts' playbook operators) groups.
      const principalType = valueAt(r.body, 'properties.principalType')?.text;
      const problems =
        principalType === "'ServicePrincipal'" || principalType === "'Group'"
          ? []
          : [`${r.file}: ${r.symbol}: properties.principalType must be 'ServicePrincipal' or 'Group', is ${principalType ?? 'unset'}`];
      const scope = valueAt(r.body, 'scope')?.text;
      const name = valueAt(r.body, 'name')?.text ?? '';
      // guid(scope.id, principalId, roleId): one assignment per scope, principal and role, stable across deployments. A
      // resource-group-wide one names resourceGroup() (RESOURCE_GROUP_WIDE lists the only ones allowed).
      const named = scope ? name.startsWith(`guid(${scope}.id, `) : name.startsWith('guid(resourceGroup().id, ');
      if (!named) problems.push(`${r.file}: ${r.symbol}: name must be guid(<scope>.id, <principal>, <role>), got ${name}`);
      return problems;
    },
  ],
];

function expectProps(r: BicepResource, expected: Record<string, string>): string[] {
  return Object.entries(expected).flatMap(([path, value]) => {
    const actual = valueAt(r.body, path)?.text;
    return actual === value ? [] : [`${r.file}: ${r.symbol}: ${path} must be ${value}, is ${actual ?? 'unset'}`];
  });
}

function ruleBreaches(files: BicepFile[]): string[] {
  return files.flatMap((file) => resources(file).flatMap((r) => RULES.filter(([type]) => type === r.type).flatMap(([, rule]) => rule(r))));
}

/** Event Hubs namespaces with local auth on must hold only the diagnostic setting's rule, and say why. */
function localAuthExceptions(files: BicepFile[]): string[] {
  return files.flatMap((file) =>
    resources(file)
      .filter((r) => r.type === 'Microsoft.EventHub/namespaces' && valueAt(r.body, 'properties.disableLocalAuth')?.text !== 'true')
      .flatMap((r) => {
        const rules = resources(file).filter((x) => x.type === 'Microsoft.EventHub/namespaces/authorizationRules');
        const problems: string[] = [];
        if (!/diagnostic-settings\.md/.test(file.text)) problems.push(`${file.path}: ${r.symbol}: local auth on without the documented reason`);
        if (rules.length !== 1)
          problems.push(`${file.path}: ${r.symbol}: local auth on for ${rules.length} authorization rules, not the diagnostic setting's one`);
        return problems;
      }),
  );
}

/**
 * The Azure roles the engine's identity gets from the core deployment (main.bicep and the modules it deploys the engine
 * with), as `<role id> on <scope resource type>`: exactly these, nothing wider. The relay's and Entra's templates grant
 * their own identities' roles.
 */
const CORE_MODULES = ['identity', 'storage', 'serviceBus', 'eventHubs', 'monitoring', 'functionApp', 'sentinelRole'];
const isCore = (file: BicepFile) => file.path === 'infra/main.bicep' || CORE_MODULES.some((m) => file.path === `infra/modules/${m}.bicep`);

const EXPECTED_ROLES = [
  'b7e6dc6d-f1e8-4753-8033-0f276bb0955b on Microsoft.Storage/storageAccounts', // Storage Blob Data Owner: host storage
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3 on Microsoft.Storage/storageAccounts', // Storage Table Data Contributor: ledger
  '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39 on Microsoft.ServiceBus/namespaces/queues', // Azure Service Bus Data Sender
  '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0 on Microsoft.ServiceBus/namespaces/queues', // Azure Service Bus Data Receiver
  'a638d3c7-ab3a-418d-83e6-5f17a39d4fde on Microsoft.EventHub/namespaces/eventhubs', // Azure Event Hubs Data Receiver
  '3913510d-42f4-4e42-8a64-420c390055eb on Microsoft.Insights/components', // Monitoring Metrics Publisher
  '3e150937-b8fe-4cfb-8069-0eaf05ecd056 on Microsoft.OperationalInsights/workspaces', // Microsoft Sentinel Responder
];

/** The roles granted to `principal` (the expression a module names it by: its parameter, or a loop's item). */
function grantedRoles(files: BicepFile[], principal = 'principalId'): string[] {
  return files.flatMap((file) => {
    const all = resources(file);
    return all
      .filter((r) => r.type === 'Microsoft.Authorization/roleAssignments' && valueAt(r.body, 'properties.principalId')?.text === principal)
      .map((r) => {
        const roleVar = /'Microsoft\.Authorization\/roleDefinitions',\s*(\w+)\)/.exec(valueAt(r.body, 'properties.roleDefinitionId')?.text ?? '')?.[1];
        const roleId = roleVar ? unquote(declaration(file, 'var', roleVar).value?.text ?? '') : '?';
        const scope = all.find((x) => x.symbol === valueAt(r.body, 'scope')?.text);
        return `${roleId} on ${scope?.type ?? '?'}`;
      });
  });
}

const BAD = `
resource st 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'st'
  properties: { allowSharedKeyAccess: true, allowBlobPublicAccess: false, minimumTlsVersion: 'TLS1_0', supportsHttpsTrafficOnly: true }
}
resource sb 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: 'sb'
  properties: { minimumTlsVersion: '1.2' }
}
resource eh 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: 'eh'
  properties: { disableLocalAuth: false, minimumTlsVersion: '1.2' }
}
resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: 'app'
  properties: { httpsOnly: false, siteConfig: { minTlsVersion: '1.2', ftpsState: 'AllAllowed' } }
}
var owner = '8e3af657-a8ff-443c-a75c-2fe8c4bcb635'
resource wide 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: sb
  name: guid(resourceGroup().id, 'x')
  properties: { roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', owner), principalId: 'x', principalType: 'User' }
}
var appSettings = {
  ServiceBusConnection: 'Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=\${sb.listKeys().primaryKey}'
  APPLICATIONINSIGHTS_CONNECTION_STRING: 'InstrumentationKey=x'
}
`;

describe('infra/: no secrets, no shared keys, TLS 1.2, least privilege', () => {
  it('holds no key, SAS or connection string, in any file', () => {
    expect(infraTexts().flatMap(({ path, text }) => secretsIn(path, text))).toEqual([]);
    expect(secretsIn('bad.bicep', BAD)).toEqual([
      'bad.bicep: reads keys',
      'bad.bicep: a shared access key',
      'bad.bicep: a Service Bus or Event Hubs connection string',
    ]);
  });

  it('gives the app no connection-string setting: every connection is a host name and the identity', async () => {
    const main = (await infraFiles()).find((f) => f.path === 'infra/main.bicep');
    expect(main && connectionStringSettings(main)).toEqual([]);
    expect(connectionStringSettings(await parseBicep(BAD, 'bad.bicep'))).toEqual(['bad.bicep: app setting ServiceBusConnection is a connection string']);
  });

  it('turns off shared keys and local auth, and requires HTTPS and TLS 1.2, wherever they apply', async () => {
    const files = await infraFiles();
    expect(ruleBreaches(files)).toEqual([]);
    // Each kind of resource the rules read is in the templates: a renamed type would leave a rule reading nothing.
    const types = new Set(files.flatMap(resources).map((r) => r.type));
    for (const [type] of RULES) expect(types, type).toContain(type);
    expect(ruleBreaches([await parseBicep(BAD, 'bad.bicep')])).toEqual([
      'bad.bicep: st: properties.allowSharedKeyAccess must be false, is true',
      "bad.bicep: st: properties.minimumTlsVersion must be 'TLS1_2', is 'TLS1_0'",
      'bad.bicep: sb: properties.disableLocalAuth must be true, is unset',
      'bad.bicep: site: properties.httpsOnly must be true, is false',
      "bad.bicep: site: properties.siteConfig.ftpsState must be 'Disabled', is 'AllAllowed'",
      "bad.bicep: wide: properties.principalType must be 'ServicePrincipal' or 'Group', is 'User'",
      "bad.bicep: wide: name must be guid(<scope>.id, <principal>, <role>), got guid(resourceGroup().id, 'x')",
    ]);
  });

  it('grants no role on a whole resource group but the one Sentinel needs to run the relays', async () => {
    const wide = (await infraFiles()).flatMap((file) =>
      resources(file)
        .filter((r) => r.type === 'Microsoft.Authorization/roleAssignments' && valueAt(r.body, 'scope') === undefined)
        .map((r) => `${r.file}: ${r.symbol}`),
    );
    // Sentinel runs playbooks with Microsoft Sentinel Automation Contributor on their resource group (learn.microsoft.com,
    // "Configure permissions for playbooks"): the relays' group holds them and nothing else of the engine's.
    expect(wide).toEqual(['infra/modules/relay.bicep: sentinelRunsPlaybooks']);
  });

  it('keeps local auth on only where the diagnostic setting needs it, for its one rule', async () => {
    expect(localAuthExceptions(await infraFiles())).toEqual([]);
    expect(localAuthExceptions([await parseBicep(BAD, 'bad.bicep')])).toEqual([
      'bad.bicep: eh: local auth on without the documented reason',
      "bad.bicep: eh: local auth on for 0 authorization rules, not the diagnostic setting's one",
    ]);
  });

  it('grants the identity exactly its Azure roles, each on the one resource it needs', async () => {
    expect(grantedRoles((await infraFiles()).filter(isCore)).sort()).toEqual([...EXPECTED_ROLES].sort());
    expect(grantedRoles([await parseBicep(BAD, 'bad.bicep')], "'x'")).toEqual(['8e3af657-a8ff-443c-a75c-2fe8c4bcb635 on Microsoft.ServiceBus/namespaces']);
  });

  it("grants no one but the engine's identity a role on its storage, queue or hub: that data plane is Tier 0", async () => {
    // Who may write the ledger and send to the queue can have the engine act outside its policy: people reach them
    // through the engine's API (deadletters, replay), under app roles.
    const others = (await infraFiles()).filter(isCore).flatMap((file) =>
      resources(file)
        .filter((r) => r.type === 'Microsoft.Authorization/roleAssignments' && valueAt(r.body, 'properties.principalId')?.text !== 'principalId')
        .map((r) => `${r.file}: ${r.symbol}`),
    );
    expect(others).toEqual([]);
  });
});
