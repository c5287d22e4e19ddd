/**
 * Where each API lives, per cloud (AZURE_CLOUD), each overridable (GRAPH_ENDPOINT, DEFENDER_ENDPOINT, ARM_ENDPOINT,
 * AZURE_AUTHORITY_HOST), so national clouds — and the sandbox tenant — work by configuration alone.
 * Sources: reference/graph.md (national Graph hosts), reference/defender.md (Defender hosts and token scope),
 * reference/sentinel.md (ARM endpoint and credential scopes).
 */
export const CLOUDS = ['AzurePublicCloud', 'AzureUSGovernment', 'AzureUSGovernmentDoD', 'AzureChinaCloud'] as const;
export type CloudName = (typeof CLOUDS)[number];

export interface CloudEndpoints {
  authorityHost: string;
  graph: string;
  /** Defender for Endpoint's API; undefined where the service is not offered (Azure China). */
  defender: string | undefined;
  arm: string;
}

export const CLOUD_PRESETS: Record<CloudName, CloudEndpoints> = {
  AzurePublicCloud: {
    authorityHost: 'https://login.microsoftonline.com',
    graph: 'https://graph.microsoft.com',
    defender: 'https://api.security.microsoft.com',
    arm: 'https://management.azure.com',
  },
  // GCC High.
  AzureUSGovernment: {
    authorityHost: 'https://login.microsoftonline.us',
    graph: 'https://graph.microsoft.us',
    defender: 'https://api-gov.securitycenter.microsoft.us',
    arm: 'https://management.usgovcloudapi.net',
  },
  AzureUSGovernmentDoD: {
    authorityHost: 'https://login.microsoftonline.us',
    graph: 'https://dod-graph.microsoft.us',
    defender: 'https://api-gov.securitycenter.microsoft.us',
    arm: 'https://management.usgovcloudapi.net',
  },
  AzureChinaCloud: {
    authorityHost: 'https://login.chinacloudapi.cn',
    graph: 'https://microsoftgraph.chinacloudapi.cn',
    defender: undefined,
    arm: 'https://management.chinacloudapi.cn',
  },
};

/** The token scope for an API endpoint: `{origin}/.default`. Defender's public API is the exception (below). */
export function scopeFor(endpoint: string): string {
  return `${new URL(endpoint).origin}/.default`;
}

/**
 * Defender for Endpoint tokens are requested for `https://api.securitycenter.microsoft.com` even when calling
 * api.security.microsoft.com or a geo host (reference/defender.md); other hosts (government, the sandbox) use their
 * own origin.
 */
export function defenderScopeFor(endpoint: string): string {
  return /(^|\.)security\.microsoft\.com$|(^|\.)securitycenter\.microsoft\.com$/.test(new URL(endpoint).hostname)
    ? 'https://api.securitycenter.microsoft.com/.default'
    : scopeFor(endpoint);
}
