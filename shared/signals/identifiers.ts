/**
 * Allow-list patterns for every identifier that can end up in a URL or a ledger key (reference/security.md:
 * "ids checked against allow-list patterns"). One place, so signals, manual requests and executors agree.
 */

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Defender for Endpoint machine ids are 40 hex characters. */
const MDE_DEVICE_ID = /^[0-9a-f]{40}$/i;
/** Deliberately loose (UPNs are varied) but with no whitespace, slashes, quotes or control characters. */
const UPN = /^[^\s@/\\'"?#%]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$/i;
/** RFC 1123 host names: labels of letters, digits and hyphens. */
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$/i;
/** /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{ws}/providers/Microsoft.SecurityInsights/Incidents/{id} */
const INCIDENT_ARM_ID =
  /^\/subscriptions\/([0-9a-f-]{36})\/resourceGroups\/([-\w._()]{1,90})\/providers\/Microsoft\.OperationalInsights\/workspaces\/([-\w]{1,63})\/providers\/Microsoft\.SecurityInsights\/Incidents\/([-\w]{1,64})$/i;

export const isGuid = (value: string): boolean => GUID.test(value);
export const isMdeDeviceId = (value: string): boolean => MDE_DEVICE_ID.test(value);
export const isUpn = (value: string): boolean => value.length <= 320 && UPN.test(value);
export const isDnsName = (value: string): boolean => DNS_NAME.test(value);

export interface IncidentArmIdParts {
  subscriptionId: string;
  resourceGroup: string;
  workspaceName: string;
  incidentName: string;
}

export function parseIncidentArmId(armId: string): IncidentArmIdParts | undefined {
  const match = INCIDENT_ARM_ID.exec(armId);
  if (!match) return undefined;
  const [, subscriptionId, resourceGroup, workspaceName, incidentName] = match as unknown as [string, string, string, string, string];
  return { subscriptionId, resourceGroup, workspaceName, incidentName };
}

/** The short (first-label) form of a host name, lower-cased: `DC01.contoso.com` -> `dc01`. */
export function shortHostName(name: string): string {
  const dot = name.indexOf('.');
  return (dot === -1 ? name : name.slice(0, dot)).toLowerCase();
}
