/**
 * The sandbox tenant's state: the users, ID Protection records and call log the emulated APIs read and write.
 * Seeded with the demo identities the sample incident and alert name, a break-glass account, an administrator and a
 * guest. Tests read it to assert what really happened (a side effect happened once, an account is disabled).
 */
export interface SandboxUser {
  id: string;
  userPrincipalName: string;
  displayName: string;
  accountEnabled: boolean;
  userType: 'Member' | 'Guest';
  /** Holds an Entra role high enough that an app-only caller cannot disable it (Graph answers 403). */
  privileged: boolean;
  /** revokeSignInSessions calls received. */
  sessionRevocations: number;
  /** Group object ids the user belongs to (transitively). */
  groupIds: string[];
  mail?: string;
  /** For a user synchronized from Active Directory; Graph answers null for cloud-only users. */
  onPremisesSamAccountName?: string;
  onPremisesSecurityIdentifier?: string;
  onPremisesUserPrincipalName?: string;
}

/** An active directory role assignment (PIM roleAssignmentScheduleInstance). */
export interface SandboxRoleAssignment {
  id: string;
  principalId: string;
  roleDefinitionId: string;
  directoryScopeId: string;
  assignmentType: 'Activated' | 'Assigned';
  memberType: 'Direct' | 'Group';
  startDateTime: string;
  endDateTime: string | null;
  /** The schedule the instance was made from: a PIM request's targetScheduleId names it. */
  roleAssignmentScheduleId: string;
}

/** A PIM request for an active role (roleAssignmentScheduleRequest), as Graph keeps each one made for a principal. */
export interface SandboxRoleRequest {
  id: string;
  action: 'adminAssign' | 'adminRemove' | 'selfActivate';
  status: 'Provisioned' | 'Revoked' | 'PendingApproval';
  /** Set when the role's policy asked an approver: the approval the request went through (or waits for). */
  approvalId: string | null;
  createdDateTime: string;
  principalId: string;
  roleDefinitionId: string;
  directoryScopeId: string;
  targetScheduleId: string | null;
  justification: string;
}

export const GLOBAL_ADMINISTRATOR = '62e90394-69f5-4237-9190-012177145e10';
export const SECURITY_ADMINISTRATOR = '194ae4cb-b126-40b2-bd5b-6091b380977d';
export const TIER0_GROUP = '7e700000-0000-4000-8000-0000000000a0';

export interface SandboxRiskyUser {
  id: string;
  userPrincipalName: string;
  riskLevel: 'low' | 'medium' | 'high' | 'hidden' | 'none';
  riskState: 'atRisk' | 'confirmedCompromised' | 'remediated' | 'dismissed' | 'none';
  riskDetail: string;
  riskLastUpdatedDateTime: string;
  isProcessing: boolean;
  isDeleted: boolean;
}

export interface SandboxMachine {
  id: string;
  computerDnsName: string;
  aadDeviceId: string | null;
  osPlatform: string;
  healthStatus: string;
  riskScore: 'None' | 'Informational' | 'Low' | 'Medium' | 'High';
  exposureLevel: string;
  machineTags: string[];
  isolated: boolean;
  onboardingStatus: string;
  lastSeen: string;
  /** Set on a stale record Defender merged into the device's live one. */
  mergedIntoMachineId: string | null;
}

export interface SandboxMachineAction {
  id: string;
  type: 'Isolate' | 'Unisolate';
  status: 'Pending' | 'InProgress' | 'Succeeded' | 'Failed' | 'TimeOut' | 'Cancelled';
  machineId: string;
  computerDnsName: string;
  requestor: string;
  requestorComment: string;
  isolationType?: 'Full' | 'Selective';
  creationDateTimeUtc: string;
  lastUpdateDateTimeUtc: string;
  /** How this one ends when it completes (a test can make it fail). */
  endsAs: 'Succeeded' | 'Failed' | 'TimeOut' | 'Cancelled';
}

export interface SandboxIncident {
  id: string;
  name: string;
  etag: string;
  properties: {
    title: string;
    severity: string;
    status: string;
    description?: string;
    labels: Array<{ labelName: string; labelType: string }>;
    owner?: unknown;
    classification?: string;
    incidentNumber?: number;
    /** ISO 8601: when it was created, and when it last changed (a PUT moves it). */
    createdTimeUtc?: string;
    lastModifiedTimeUtc?: string;
    classificationReason?: string;
    classificationComment?: string;
    additionalData?: Record<string, unknown>;
  };
  /** What incidents.listEntities answers (ARM entity shape). Sentinel fills these in over time. */
  entities: unknown[];
  comments: Map<string, { id: string; name: string; properties: { message: string; createdTimeUtc: string; lastModifiedTimeUtc: string } }>;
}

export interface CallRecord {
  method: string;
  path: string;
  /** The query string, `?` included (empty without one): which ids a list call asked for. */
  query?: string;
  status: number;
  /** When the call arrived (epoch ms): what benchmarks measure rates and latencies by. */
  at?: number;
}

/** The Defender for Endpoint APIs the sandbox serves, each limited apart as Defender documents it (reference/defender.md). */
export const DEFENDER_APIS = [
  'defender-machines',
  'defender-machine',
  'defender-machine-actions',
  'defender-machine-action',
  'defender-isolate',
  'defender-unisolate',
] as const;
export type DefenderApiName = (typeof DEFENDER_APIS)[number];

/** At most `max` calls in any `windowMs`. */
export interface Quota {
  max: number;
  windowMs: number;
}

/** The same quota for every Defender API. */
const everyDefenderApi = (quota: Quota): Record<DefenderApiName, Quota> =>
  Object.fromEntries(DEFENDER_APIS.map((api) => [api, { ...quota }])) as Record<DefenderApiName, Quota>;

export const DEMO = {
  adele: '6e7b768e-07e2-4810-8459-485f84f8f204',
  jsmith: '3c5a1e8e-2f62-4d8b-9c11-7a0d3b4c5e6f',
  megan: '2b3c4d5e-0000-4000-8000-000000000042',
  breakglass: '99999999-9999-4999-8999-999999999999',
  guest: '5a5a5a5a-0000-4000-8000-00000000beef',
} as const;

export const DEMO_DEVICES = {
  wks042: '0c1d9e3bbaf6b2c7e8f9a0b1c2d3e4f5a6b7c8d9',
  websrv1: '9f8e7d6c5b4a39281706f5e4d3c2b1a098765432',
  dc01: 'd0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0',
} as const;

/** The sandbox's Sentinel workspace. */
export const SAMPLE_WORKSPACE_ID =
  '/subscriptions/0b8a3f7e-1c55-4a1e-9d5b-2f0c6c1b7d21/resourceGroups/rg-siem/providers/Microsoft.OperationalInsights/workspaces/law-sentinel';

/** The incident in cli/samples/incident.json. */
export const SAMPLE_INCIDENT_ID = `${SAMPLE_WORKSPACE_ID}/providers/Microsoft.SecurityInsights/Incidents/73e01a99-5cd7-4139-a149-9f2736ff2ab5`;

/** The sample incident's entities, as incidents.listEntities returns them. */
const SAMPLE_INCIDENT_ENTITIES = [
  {
    id: `${SAMPLE_INCIDENT_ID}/Entities/e1d3d618-e11f-478b-98e3-bb381539a8e1`,
    name: 'e1d3d618-e11f-478b-98e3-bb381539a8e1',
    type: 'Microsoft.SecurityInsights/Entities',
    kind: 'Account',
    properties: { friendlyName: 'Adele Vance', accountName: 'adele.vance', upnSuffix: 'contoso.com', aadUserId: DEMO.adele },
  },
  {
    id: `${SAMPLE_INCIDENT_ID}/Entities/f2b1c7a0-7d7e-4c1e-8d7e-6d3c1b2a9f00`,
    name: 'f2b1c7a0-7d7e-4c1e-8d7e-6d3c1b2a9f00',
    type: 'Microsoft.SecurityInsights/Entities',
    kind: 'Host',
    properties: {
      friendlyName: 'WKS-042',
      hostName: 'WKS-042',
      dnsDomain: 'contoso.com',
      osFamily: 'Windows',
      additionalData: { MdatpDeviceId: DEMO_DEVICES.wks042 },
    },
  },
];

export class SandboxTenant {
  readonly users = new Map<string, SandboxUser>();
  readonly riskyUsers = new Map<string, SandboxRiskyUser>();
  readonly machines = new Map<string, SandboxMachine>();
  readonly machineActions: SandboxMachineAction[] = [];
  readonly roleAssignments: SandboxRoleAssignment[] = [];
  readonly roleEligibilities: Array<{ id: string; principalId: string; roleDefinitionId: string; directoryScopeId: string }> = [];
  /** Every PIM request for an active role, oldest first: what roleAssignmentScheduleRequests lists. */
  readonly roleRequests: SandboxRoleRequest[] = [];
  /** PIM policy per role: does activating it need an approval? Roles not listed do. */
  readonly activationApproval = new Map<string, boolean>([[SECURITY_ADMINISTRATOR, false]]);
  /** Sentinel incidents by lower-cased ARM id. */
  readonly incidents = new Map<string, SandboxIncident>();
  readonly calls: CallRecord[] = [];
  /** The app roles the managed identity holds (on Graph and Defender alike: the sandbox serves both on one origin). */
  managedIdentityRoles: string[] = [
    'User.Read.All',
    'User.EnableDisableAccount.All',
    'User.RevokeSessions.All',
    'IdentityRiskyUser.ReadWrite.All',
    'RoleAssignmentSchedule.ReadWrite.Directory',
    'RoleEligibilitySchedule.ReadWrite.Directory',
    'RoleManagementPolicy.Read.Directory',
    'GroupMember.Read.All',
    'Machine.Read.All',
    'Machine.Isolate',
  ];
  /** Machine actions complete this long after they are posted (Defender: seconds to minutes). */
  actionCompletionMs = 0;
  /** Graph's identity write quota (reference/graph.md: 3,000 per 2.5 minutes per app and tenant); tests compress it. */
  graphWriteQuota: Quota = { max: 3000, windowMs: 150_000 };
  /**
   * ID Protection's quota: about 1 request per second per tenant (reference/idprotection.md). Unlimited unless a test or
   * benchmark sets it: executors tested alone call it unpaced, and the engine paces itself to 1/s by default.
   */
  idProtectionQuota: Quota = { max: Number.MAX_SAFE_INTEGER, windowMs: 1000 };
  /** Defender's quota of each API: 100 calls per minute (reference/defender.md). Tests and benchmarks may compress them. */
  defenderQuotas: Record<DefenderApiName, Quota> = everyDefenderApi({ max: 100, windowMs: 60_000 });
  /** Whether Defender's filters may join equalities with `or` (OData V4; its docs show no example): a test can refuse it. */
  defenderAcceptsOr = true;
  /** Items per page of a Defender collection (machine actions); past it, the answer carries an @odata.nextLink. */
  defenderPageSize = 10_000;
  /** Items per page of a Graph collection (riskyUsers; Graph's own maximum $top there is 500). */
  graphPageSize = 500;
  /** Incidents per page of an ARM incident list, whatever $top asks; past it, the answer carries a nextLink. */
  armPageSize = 1000;
  now: () => number = Date.now;

  constructor(seed = true) {
    if (!seed) return;
    this.addUser({ id: DEMO.adele, userPrincipalName: 'adele.vance@contoso.com', displayName: 'Adele Vance' });
    this.addUser({ id: DEMO.jsmith, userPrincipalName: 'jsmith@contoso.com', displayName: 'John Smith' });
    this.addUser({ id: DEMO.megan, userPrincipalName: 'megan.bowen@contoso.com', displayName: 'Megan Bowen (Global Administrator)', privileged: true });
    this.addUser({ id: DEMO.breakglass, userPrincipalName: 'breakglass1@contoso.com', displayName: 'Emergency access 1', privileged: true });
    this.addUser({
      id: DEMO.guest,
      userPrincipalName: 'partner_fabrikam.com#EXT#@contoso.onmicrosoft.com',
      displayName: 'Partner guest',
      userType: 'Guest',
      mail: 'partner@fabrikam.com',
    });
    this.setRisk(DEMO.adele, 'high');
    this.setRisk(DEMO.megan, 'medium');
    this.assignRole(DEMO.megan, GLOBAL_ADMINISTRATOR, 'Activated', 60 * 60_000);
    this.assignRole(DEMO.breakglass, GLOBAL_ADMINISTRATOR, 'Assigned');
    this.users.get(DEMO.breakglass)?.groupIds.push(TIER0_GROUP);
    this.addIncident(SAMPLE_INCIDENT_ID, 'Credential theft followed by malware on WKS-042', 'High', SAMPLE_INCIDENT_ENTITIES, {
      tactics: ['CredentialAccess', 'Execution'],
      techniques: ['T1003'],
      alertProductNames: ['Microsoft Defender Advanced Threat Protection'],
    });
    this.addMachine({
      id: DEMO_DEVICES.wks042,
      computerDnsName: 'wks-042.contoso.com',
      aadDeviceId: '80e2f5c1-3b7a-4c55-9d0e-1f2a3b4c5d6e',
      riskScore: 'High',
      machineTags: ['workstation'],
    });
    this.addMachine({ id: DEMO_DEVICES.websrv1, computerDnsName: 'websrv1.contoso.com', aadDeviceId: null, riskScore: 'Medium', machineTags: ['server'] });
    this.addMachine({ id: DEMO_DEVICES.dc01, computerDnsName: 'dc01.contoso.com', aadDeviceId: null, riskScore: 'Low', machineTags: ['critical', 'server'] });
  }

  /** One quota for every Defender API (each still counted apart): how tests and benchmarks compress or lift them. */
  setDefenderQuota(quota: Quota): void {
    this.defenderQuotas = everyDefenderApi(quota);
  }

  addMachine(machine: Partial<SandboxMachine> & Pick<SandboxMachine, 'id' | 'computerDnsName'>): SandboxMachine {
    const full: SandboxMachine = {
      aadDeviceId: null,
      osPlatform: 'Windows11',
      healthStatus: 'Active',
      riskScore: 'None',
      exposureLevel: 'Medium',
      machineTags: [],
      isolated: false,
      onboardingStatus: 'Onboarded',
      lastSeen: new Date(this.now()).toISOString(),
      mergedIntoMachineId: null,
      ...machine,
    };
    this.machines.set(full.id, full);
    return full;
  }

  /**
   * An active role assignment, started `startedMsAgo` ago (PIM refuses to remove one younger than ~5 minutes), as found:
   * with no request of its own (an administrator assigned it outside PIM), unless `schedule` names the request's.
   */
  assignRole(
    principalId: string,
    roleDefinitionId: string,
    assignmentType: 'Activated' | 'Assigned',
    startedMsAgo = 0,
    schedule = `schedule-${principalId}-${roleDefinitionId}-${Date.now()}`,
  ): void {
    const now = new Date(Date.now() - startedMsAgo).toISOString();
    this.roleAssignments.push({
      id: `${principalId}-${roleDefinitionId}`,
      principalId,
      roleDefinitionId,
      directoryScopeId: '/',
      assignmentType,
      memberType: 'Direct',
      startDateTime: now,
      endDateTime: assignmentType === 'Activated' ? new Date(Date.now() + 8 * 3600_000).toISOString() : null,
      roleAssignmentScheduleId: schedule,
    });
  }

  /**
   * The user activates an eligible role through PIM (selfActivate), `startedMsAgo` ago. A role whose policy asks for an
   * approval is active only once `approver` approved; without one the request waits, PendingApproval.
   */
  activateRole(
    principalId: string,
    roleDefinitionId: string,
    { approver, startedMsAgo = 0 }: { approver?: string; startedMsAgo?: number } = {},
  ): SandboxRoleRequest {
    const needsApproval = this.activationApproval.get(roleDefinitionId) ?? true;
    const request = this.recordRoleRequest('selfActivate', principalId, roleDefinitionId, needsApproval && !approver ? 'PendingApproval' : 'Provisioned', {
      approvalId: needsApproval ? `approval-${this.roleRequests.length + 1}-by-${approver ?? 'nobody yet'}` : null,
      startedMsAgo,
    });
    if (request.status === 'Provisioned') this.assignRole(principalId, roleDefinitionId, 'Activated', startedMsAgo, request.targetScheduleId as string);
    return request;
  }

  /** A request kept as Graph keeps it: its schedule is named after it, as PIM's answers show. */
  recordRoleRequest(
    action: SandboxRoleRequest['action'],
    principalId: string,
    roleDefinitionId: string,
    status: SandboxRoleRequest['status'],
    { approvalId = null, startedMsAgo = 0, justification = 'sandbox' }: { approvalId?: string | null; startedMsAgo?: number; justification?: string } = {},
  ): SandboxRoleRequest {
    const id = `${String(this.roleRequests.length + 1).padStart(8, '0')}-0000-4000-8000-${Date.now().toString(16).padStart(12, '0').slice(-12)}`;
    const request: SandboxRoleRequest = {
      id,
      action,
      status,
      approvalId,
      createdDateTime: new Date(Date.now() - startedMsAgo).toISOString(),
      principalId,
      roleDefinitionId,
      directoryScopeId: '/',
      targetScheduleId: action === 'adminRemove' ? null : id,
      justification,
    };
    this.roleRequests.push(request);
    return request;
  }

  addIncident(armId: string, title: string, severity: string, entities: unknown[] = [], additionalData: Record<string, unknown> = {}): SandboxIncident {
    const incident: SandboxIncident = {
      id: armId,
      name: armId.split('/').pop() as string,
      etag: '"1"',
      properties: {
        title,
        severity,
        status: 'New',
        labels: [],
        additionalData,
        incidentNumber: this.incidents.size + 1,
        createdTimeUtc: new Date().toISOString(),
        lastModifiedTimeUtc: new Date().toISOString(),
      },
      entities,
      comments: new Map(),
    };
    this.incidents.set(armId.toLowerCase(), incident);
    return incident;
  }

  /** Close the incident as an analyst does in the portal: a new ETag, its classification, and why. */
  closeIncident(armId: string, classification: string, classificationReason?: string, classificationComment?: string): SandboxIncident {
    const incident = this.incidents.get(armId.toLowerCase());
    if (!incident) throw new Error(`no incident ${armId} in the sandbox`);
    incident.properties = {
      ...incident.properties,
      status: 'Closed',
      classification,
      ...(classificationReason !== undefined && { classificationReason }),
      ...(classificationComment !== undefined && { classificationComment }),
    };
    incident.etag = `"${Number(incident.etag.replace(/"/g, '')) + 1}"`;
    return incident;
  }

  /** Bring machine actions up to date: those whose time has come complete, and isolation state follows. */
  advance(): void {
    const now = this.now();
    for (const action of this.machineActions) {
      if (action.status !== 'Pending' && action.status !== 'InProgress') continue;
      if (now - Date.parse(action.creationDateTimeUtc) < this.actionCompletionMs) continue;
      action.status = action.endsAs;
      action.lastUpdateDateTimeUtc = new Date(now).toISOString();
      const machine = this.machines.get(action.machineId);
      if (machine && action.status === 'Succeeded') machine.isolated = action.type === 'Isolate';
    }
  }

  addUser(user: Partial<SandboxUser> & Pick<SandboxUser, 'id' | 'userPrincipalName' | 'displayName'>): SandboxUser {
    const full: SandboxUser = { accountEnabled: true, userType: 'Member', privileged: false, sessionRevocations: 0, groupIds: [], ...user };
    this.users.set(full.id, full);
    return full;
  }

  setRisk(id: string, riskLevel: SandboxRiskyUser['riskLevel'], riskState: SandboxRiskyUser['riskState'] = 'atRisk'): void {
    const user = this.users.get(id);
    if (!user) throw new Error(`no sandbox user ${id}`);
    this.riskyUsers.set(id, {
      id,
      userPrincipalName: user.userPrincipalName,
      riskLevel,
      riskState,
      riskDetail: 'none',
      riskLastUpdatedDateTime: new Date().toISOString(),
      isProcessing: false,
      isDeleted: false,
    });
  }

  /** A user by object id or UPN (Graph accepts either in /users/{id}). */
  findUser(idOrUpn: string): SandboxUser | undefined {
    const key = idOrUpn.toLowerCase();
    return this.users.get(key) ?? [...this.users.values()].find((u) => u.userPrincipalName.toLowerCase() === key);
  }

  /** Defender calls made, per API as Defender limits them (reference/defender.md), answered or not. */
  defenderCalls(): Partial<Record<DefenderApi, number>> {
    const counts: Partial<Record<DefenderApi, number>> = {};
    for (const call of this.calls) {
      const api = defenderApiOf(call);
      if (api) counts[api] = (counts[api] ?? 0) + 1;
    }
    return counts;
  }

  /** How many calls matched, e.g. `count('PATCH', /\/users\//)`: to assert a side effect happened once. */
  count(method: string, path: RegExp): number {
    return this.calls.filter((c) => c.method === method && path.test(c.path) && c.status < 400).length;
  }
}

export type DefenderApi = 'machines' | 'machine' | 'machine-actions' | 'machine-action' | 'isolate' | 'unisolate';

/** How a request names the Defender API it calls: the one table the sandbox routes by and counts calls by. */
export const DEFENDER_ROUTES: Record<DefenderApiName, { method: 'GET' | 'POST'; path: RegExp }> = {
  'defender-machines': { method: 'GET', path: /^\/api\/machines$/ },
  'defender-machine': { method: 'GET', path: /^\/api\/machines\/([^/]+)$/ },
  'defender-isolate': { method: 'POST', path: /^\/api\/machines\/([^/]+)\/isolate$/ },
  'defender-unisolate': { method: 'POST', path: /^\/api\/machines\/([^/]+)\/unisolate$/ },
  'defender-machine-actions': { method: 'GET', path: /^\/api\/machineactions$/ },
  'defender-machine-action': { method: 'GET', path: /^\/api\/machineactions\/([^/]+)$/ },
};

/** The Defender API a request calls, with its path's match, or undefined for a request to another API. */
export function defenderRouteOf(method: string, path: string): { name: DefenderApiName; match: RegExpExecArray } | undefined {
  for (const name of DEFENDER_APIS) {
    const route = DEFENDER_ROUTES[name];
    const match = route.method === method ? route.path.exec(path) : null;
    if (match) return { name, match };
  }
  return undefined;
}

/** The Defender API a call was made to, by its short name, or undefined for a call to another API. */
export function defenderApiOf({ method, path }: Pick<CallRecord, 'method' | 'path'>): DefenderApi | undefined {
  return defenderRouteOf(method, path)?.name.slice('defender-'.length) as DefenderApi | undefined;
}
