import type { TokenCredential } from '@azure/identity';
import type { Client } from '@microsoft/microsoft-graph-client';
import { scopeFor } from '../cloud';
import type { ResponderConfig } from '../config';
import { ApiError, nextLinkOn, parseRetryAfter } from './apiError';
import { azureCredential } from './credential';
import type { Pace, PacedApi } from '../coordination/pacer';

/** What the engine reads and writes in the directory and ID Protection (reference/graph.md). */
export interface DirectoryUser {
  id: string;
  userPrincipalName: string;
  accountEnabled: boolean;
  userType: 'Member' | 'Guest' | string;
  displayName?: string | null;
  mail?: string | null;
  /** Present for users synchronized from Active Directory, null for cloud-only users (Graph: "returned only on $select"). */
  onPremisesSamAccountName?: string | null;
  onPremisesSecurityIdentifier?: string | null;
  onPremisesUserPrincipalName?: string | null;
}

/** What the engine reads of a user: who they are (for protection and identity checks) and the state its actions change. */
const USER_FIELDS =
  'id,userPrincipalName,accountEnabled,userType,displayName,mail,onPremisesSamAccountName,onPremisesSecurityIdentifier,onPremisesUserPrincipalName';

export interface ActiveRole {
  roleDefinitionId: string;
  directoryScopeId: string;
  /** `Activated`: a just-in-time PIM activation; `Assigned`: permanently active. */
  assignmentType: 'Activated' | 'Assigned' | string;
  /** `Direct`, or `Group` when it comes from a role-assignable group (not removable per user). */
  memberType: string;
  startDateTime?: string;
  endDateTime?: string | null;
  /** The schedule it was made from: the targetScheduleId of the PIM request that made it. */
  roleAssignmentScheduleId?: string | null;
}

/** A PIM request for an active role (unifiedRoleAssignmentScheduleRequest), the fields the engine reads. */
export interface RoleRequest {
  id: string;
  /** `selfActivate`, `adminAssign`, `adminRemove`, … */
  action: string;
  /** `Provisioned`, `Granted`, `PendingApproval`, `Denied`, `Revoked`, … */
  status: string;
  /** Set when the role's policy sent the request to an approver. */
  approvalId?: string | null;
  createdDateTime?: string;
  roleDefinitionId: string;
  directoryScopeId: string;
  targetScheduleId?: string | null;
}

/** Pages of a user's PIM request history read at most (a page is Graph's, 100 or more): hostile input stays bounded. */
export const MAX_ROLE_REQUEST_PAGES = 5;

export interface RoleChange {
  schedule: 'assignment' | 'eligibility';
  action: 'adminRemove' | 'adminAssign';
  principalId: string;
  roleDefinitionId: string;
  directoryScopeId: string;
  justification: string;
}

export interface RiskyUser {
  id: string;
  riskLevel: string;
  riskState: string;
}

/** The directory port: Graph in production and against the sandbox tenant. */
export interface Directory {
  /** By object id or UPN; undefined when the user does not exist. */
  getUser(idOrUpn: string): Promise<DirectoryUser | undefined>;
  setAccountEnabled(id: string, enabled: boolean): Promise<void>;
  revokeSessions(id: string): Promise<void>;
  /** Undefined when ID Protection holds no risk record for the user. */
  getRiskyUser(id: string): Promise<RiskyUser | undefined>;
  confirmCompromised(ids: string[]): Promise<void>;
  /** Users ID Protection currently rates at risk or confirmed compromised, all pages. */
  listRiskyUsers(): Promise<RiskyUser[]>;
  /**
   * One page of the users ID Protection rates at risk or confirmed compromised at one of `levels`, whole records
   * (read as stream records are), from `next` (the page before's nextLink) or the start.
   */
  riskyUsersPage(levels: readonly string[], next?: string): Promise<{ users: Array<Record<string, unknown>>; next?: string }>;
  /** Active directory role assignments (PIM: activated or permanently assigned). */
  listActiveRoles(principalId: string): Promise<ActiveRole[]>;
  /**
   * The user's PIM requests for active roles (how each came, with which approval) in Graph's order, at most
   * MAX_ROLE_REQUEST_PAGES pages: `complete` is false when there were more.
   */
  listRoleRequests(principalId: string): Promise<{ requests: RoleRequest[]; complete: boolean }>;
  /** Eligible directory role assignments (PIM). */
  listEligibleRoles(principalId: string): Promise<Array<{ roleDefinitionId: string; directoryScopeId: string }>>;
  /** Whether activating the role needs an approval (rule Approval_EndUser_Assignment of its PIM policy). */
  activationNeedsApproval(roleDefinitionId: string): Promise<boolean>;
  /** POST roleAssignmentScheduleRequests (adminRemove, adminAssign) or roleEligibilityScheduleRequests (adminAssign). */
  requestRoleChange(request: RoleChange): Promise<void>;
  /** Which of `groupIds` (at most 20) the user belongs to, transitively. */
  checkMemberGroups(id: string, groupIds: string[]): Promise<string[]>;
}

/** Which of `groups` the user belongs to, transitively: checkMemberGroups takes 20 group ids at a time. */
export async function memberGroups(directory: Directory, id: string, groups: readonly string[]): Promise<string[]> {
  const chunks: string[][] = [];
  for (let i = 0; i < groups.length; i += 20) chunks.push(groups.slice(i, i + 20));
  return (await Promise.all(chunks.map((chunk) => directory.checkMemberGroups(id, chunk)))).flat();
}

export class GraphDirectory implements Directory {
  constructor(
    private readonly client: Client,
    /** Called before identity writes and ID Protection calls, whose budgets hold across all instances. */
    private readonly pace: Pace = async () => undefined,
    /** Graph's origin: a next link the engine follows (a sweep's kept place) must lead there. */
    private readonly origin = 'https://graph.microsoft.com',
  ) {}

  async getUser(idOrUpn: string): Promise<DirectoryUser | undefined> {
    return this.orUndefinedWhenMissing(() =>
      this.call(() =>
        this.client
          .api(`/users/${encodeURIComponent(idOrUpn)}`)
          .select(USER_FIELDS)
          .get(),
      ),
    );
  }

  async setAccountEnabled(id: string, enabled: boolean): Promise<void> {
    await this.call(() => this.client.api(`/users/${encodeURIComponent(id)}`).patch({ accountEnabled: enabled }), 'graph-writes');
  }

  async revokeSessions(id: string): Promise<void> {
    // Documented 200 { value: true }; a known issue says 204. Any 2xx is success (reference/graph.md).
    await this.call(() => this.client.api(`/users/${encodeURIComponent(id)}/revokeSignInSessions`).post({}), 'graph-writes');
  }

  async getRiskyUser(id: string): Promise<RiskyUser | undefined> {
    return this.orUndefinedWhenMissing(() =>
      this.call(() => this.client.api(`/identityProtection/riskyUsers/${encodeURIComponent(id)}`).get(), 'idprotection'),
    );
  }

  async confirmCompromised(ids: string[]): Promise<void> {
    await this.call(() => this.client.api('/identityProtection/riskyUsers/confirmCompromised').post({ userIds: ids }), 'idprotection');
  }

  async listRiskyUsers(): Promise<RiskyUser[]> {
    const users: RiskyUser[] = [];
    let page = await this.call(
      () =>
        this.client
          .api('/identityProtection/riskyUsers')
          .filter("riskState eq 'atRisk' or riskState eq 'confirmedCompromised'")
          .select('id,riskLevel,riskState')
          .top(500)
          .get() as Promise<{ value: RiskyUser[]; '@odata.nextLink'?: string }>,
      'idprotection',
    );
    users.push(...page.value);
    while (page['@odata.nextLink']) {
      const next = page['@odata.nextLink'];
      page = await this.call(() => this.client.api(next).get(), 'idprotection');
      users.push(...page.value);
    }
    return users;
  }

  async riskyUsersPage(levels: readonly string[], next?: string): Promise<{ users: Array<Record<string, unknown>>; next?: string }> {
    type Page = { value: Array<Record<string, unknown>>; '@odata.nextLink'?: string };
    const levelFilter = levels.map((level) => `riskLevel eq '${level.replace(/'/g, "''")}'`).join(' or ');
    const link = next === undefined ? undefined : nextLinkOn('graph', next, this.origin);
    const page: Page = await this.call(
      () =>
        (link === undefined
          ? this.client
              .api('/identityProtection/riskyUsers')
              .filter(`(riskState eq 'atRisk' or riskState eq 'confirmedCompromised') and (${levelFilter})`)
              .top(500)
          : this.client.api(link)
        ).get() as Promise<Page>,
      'idprotection',
    );
    return { users: page.value, ...(page['@odata.nextLink'] !== undefined && { next: page['@odata.nextLink'] }) };
  }

  async listActiveRoles(principalId: string): Promise<ActiveRole[]> {
    const { value } = await this.call(
      () =>
        this.client.api('/roleManagement/directory/roleAssignmentScheduleInstances').filter(`principalId eq '${principalId}'`).get() as Promise<{
          value: ActiveRole[];
        }>,
    );
    return value;
  }

  async listRoleRequests(principalId: string): Promise<{ requests: RoleRequest[]; complete: boolean }> {
    type Page = { value: RoleRequest[]; '@odata.nextLink'?: string };
    // Application permission: RoleAssignmentSchedule.ReadWrite.Directory, which requirePimReapproval already holds (Graph
    // v1.0 includes/permissions/rbacapplication-list-roleassignmentschedulerequests-permissions.md; see docs/permissions.md).
    let page = await this.call(
      () =>
        this.client
          .api('/roleManagement/directory/roleAssignmentScheduleRequests')
          .filter(`principalId eq '${principalId}'`)
          .select('id,action,status,approvalId,createdDateTime,roleDefinitionId,directoryScopeId,targetScheduleId')
          .get() as Promise<Page>,
    );
    const requests = [...(Array.isArray(page.value) ? page.value : [])];
    for (let pages = 1; page['@odata.nextLink'] !== undefined; pages++) {
      if (pages >= MAX_ROLE_REQUEST_PAGES) return { requests, complete: false };
      const next = nextLinkOn('graph', page['@odata.nextLink'], this.origin);
      page = await this.call(() => this.client.api(next).get() as Promise<Page>);
      requests.push(...(Array.isArray(page.value) ? page.value : []));
    }
    return { requests, complete: true };
  }

  async listEligibleRoles(principalId: string): Promise<Array<{ roleDefinitionId: string; directoryScopeId: string }>> {
    const { value } = await this.call(
      () =>
        this.client.api('/roleManagement/directory/roleEligibilitySchedules').filter(`principalId eq '${principalId}'`).get() as Promise<{
          value: Array<{ roleDefinitionId: string; directoryScopeId: string }>;
        }>,
    );
    return value;
  }

  async activationNeedsApproval(roleDefinitionId: string): Promise<boolean> {
    const { value } = await this.call(
      () =>
        this.client
          .api('/policies/roleManagementPolicyAssignments')
          .filter(`scopeId eq '/' and scopeType eq 'DirectoryRole' and roleDefinitionId eq '${roleDefinitionId}'`)
          .expand('policy($expand=rules)')
          .get() as Promise<{ value: Array<{ policy?: { rules?: Array<{ id: string; setting?: { isApprovalRequired?: boolean } }> } }> }>,
    );
    const rule = value[0]?.policy?.rules?.find((r) => r.id === 'Approval_EndUser_Assignment');
    return rule?.setting?.isApprovalRequired === true;
  }

  async requestRoleChange(change: RoleChange): Promise<void> {
    const path =
      change.schedule === 'assignment'
        ? '/roleManagement/directory/roleAssignmentScheduleRequests'
        : '/roleManagement/directory/roleEligibilityScheduleRequests';
    await this.call(
      () =>
        this.client.api(path).post({
          action: change.action,
          principalId: change.principalId,
          roleDefinitionId: change.roleDefinitionId,
          directoryScopeId: change.directoryScopeId,
          justification: change.justification,
          ...(change.action === 'adminAssign' && { scheduleInfo: { startDateTime: new Date().toISOString(), expiration: { type: 'noExpiration' } } }),
        }),
      'graph-writes',
    );
  }

  async checkMemberGroups(id: string, groupIds: string[]): Promise<string[]> {
    const { value } = await this.call(
      () => this.client.api(`/users/${encodeURIComponent(id)}/checkMemberGroups`).post({ groupIds }) as Promise<{ value: string[] }>,
    );
    return value;
  }

  private async orUndefinedWhenMissing<T>(read: () => Promise<T>): Promise<T | undefined> {
    try {
      return await read();
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  /** Every Graph failure leaves as an ApiError the failure classifier understands. Paced first when `paced` names a budget. */
  private async call<T>(request: () => Promise<T>, paced?: PacedApi): Promise<T> {
    if (paced) await this.pace(paced);
    try {
      return await request();
    } catch (error) {
      const e = error as { statusCode?: number; code?: string | null; message?: string; headers?: Headers; body?: unknown };
      const status = typeof e.statusCode === 'number' && e.statusCode > 0 ? e.statusCode : 0;
      throw new ApiError('graph', status, e.code ?? undefined, e.message || 'no answer from Graph', parseRetryAfter(e.headers?.get?.('retry-after')));
    }
  }
}

/**
 * The Graph client, configured for the cloud (or sandbox) in the settings. Tokens are attached only to Graph hosts
 * or `customHosts` (host names without port), so a national cloud or an emulator must be listed there. The default
 * middleware's RetryHandler is left out on purpose: it sleeps inside the call, while a worker must return and let
 * the queue retry with backoff (reference/servicebus.md).
 */
export async function createGraphDirectory(
  config: Pick<ResponderConfig, 'endpoints' | 'authorityHost'>,
  pace?: Pace,
  credential?: TokenCredential,
): Promise<GraphDirectory> {
  const graph = await import('@microsoft/microsoft-graph-client');
  const { TokenCredentialAuthenticationProvider } = await import('@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials/index.js');
  const authProvider = new TokenCredentialAuthenticationProvider(credential ?? (await azureCredential(config.authorityHost)), {
    scopes: [scopeFor(config.endpoints.graph)],
  });
  const auth = new graph.AuthenticationHandler(authProvider);
  auth.setNext(new graph.HTTPMessageHandler());
  const client = graph.Client.initWithMiddleware({
    middleware: auth,
    baseUrl: `${config.endpoints.graph}/`,
    defaultVersion: 'v1.0',
    customHosts: new Set([new URL(config.endpoints.graph).hostname]),
  });
  return new GraphDirectory(client, pace, new URL(config.endpoints.graph).origin);
}
