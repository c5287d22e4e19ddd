import { apiError, pageOf, slidingQuota, type Route, type SandboxAnswer, type SandboxRequest } from './routes';
import type { SandboxRoleAssignment, SandboxTenant, SandboxUser } from './tenant';

/**
 * The Graph v1.0 endpoints the engine uses (reference/graph.md), with their documented answers: disabling a
 * privileged user app-only is refused with 403, revokeSignInSessions answers 200 `{ value: true }` (even for guests,
 * where it does nothing), confirmCompromised answers 204 and raises the risk to high.
 */
export function graphRoutes(tenant: SandboxTenant): Route {
  const writeQuota = slidingQuota(
    () => tenant.now(),
    () => tenant.graphWriteQuota,
    'Too many requests: identity write quota exceeded',
  );
  const idProtectionQuota = slidingQuota(
    () => tenant.now(),
    () => tenant.idProtectionQuota,
    'Too many requests',
    { retryAfter: false },
  );
  return (request) => {
    if (!request.path.startsWith('/v1.0/')) return undefined;
    const throttled = request.path.startsWith('/v1.0/identityProtection/') ? idProtectionQuota() : request.method === 'GET' ? undefined : writeQuota();
    if (throttled) return throttled;
    const path = request.path.slice('/v1.0'.length);
    let match: RegExpExecArray | null;

    if ((match = /^\/users\/([^/]+)$/.exec(path))) return user(tenant, request, decodeURIComponent(match[1] as string));
    if ((match = /^\/users\/([^/]+)\/revokeSignInSessions$/.exec(path)) && request.method === 'POST') {
      const found = tenant.findUser(decodeURIComponent(match[1] as string));
      if (!found) return notFound(match[1] as string);
      found.sessionRevocations++;
      return { status: 200, body: { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean', value: true } };
    }
    if (path === '/identityProtection/riskyUsers' && request.method === 'GET') {
      // The filters the engine sends: riskState eq '…' (or'ed), riskLevel eq '…' (or'ed), the two and'ed.
      const filter = request.query.get('$filter') ?? '';
      const states = [...filter.matchAll(/riskState eq '(\w+)'/g)].map((m) => m[1]);
      const levels = [...filter.matchAll(/riskLevel eq '(\w+)'/g)].map((m) => m[1]);
      const found = [...tenant.riskyUsers.values()].filter(
        (r) => (states.length === 0 || states.includes(r.riskState)) && (levels.length === 0 || levels.includes(r.riskLevel)),
      );
      const top = Number(request.query.get('$top') ?? tenant.graphPageSize);
      return pageOf(found, Math.min(top, tenant.graphPageSize), request, { param: '$skiptoken' });
    }
    if ((match = /^\/identityProtection\/riskyUsers\/([^/]+)$/.exec(path)) && request.method === 'GET') {
      const risky = tenant.riskyUsers.get((match[1] as string).toLowerCase());
      return risky ? { status: 200, body: risky } : notFound(match[1] as string);
    }
    if (path === '/roleManagement/directory/roleAssignmentScheduleInstances' && request.method === 'GET') {
      const principal = /^principalId eq '([0-9a-f-]{36})'$/i.exec(request.query.get('$filter') ?? '')?.[1]?.toLowerCase();
      if (!principal) return apiError(400, 'BadRequest', 'filter by principalId');
      return { status: 200, body: { value: tenant.roleAssignments.filter((a) => a.principalId === principal) } };
    }
    if (path.startsWith('/roleManagement/') || path.startsWith('/policies/')) return pim(tenant, request, path);
    if ((match = /^\/users\/([^/]+)\/checkMemberGroups$/.exec(path)) && request.method === 'POST') {
      const found = tenant.findUser(decodeURIComponent(match[1] as string));
      if (!found) return notFound(match[1] as string);
      const wanted = (request.body as { groupIds?: unknown })?.groupIds;
      if (!Array.isArray(wanted) || wanted.length > 20) return apiError(400, 'Request_BadRequest', 'groupIds: between 1 and 20 group ids');
      return { status: 200, body: { value: wanted.filter((g) => typeof g === 'string' && found.groupIds.includes(g.toLowerCase())) } };
    }
    if ((match = /^\/identityProtection\/riskyUsers\/(confirmCompromised|dismiss)$/.exec(path)) && request.method === 'POST') {
      const ids = (request.body as { userIds?: unknown })?.userIds;
      if (!Array.isArray(ids) || ids.length === 0 || ids.some((id) => typeof id !== 'string' || !tenant.users.has(id.toLowerCase()))) {
        return apiError(400, 'BadRequest', 'userIds must list existing user object ids');
      }
      for (const id of ids as string[]) {
        if (match[1] === 'confirmCompromised') tenant.setRisk(id.toLowerCase(), 'high', 'confirmedCompromised');
        else tenant.setRisk(id.toLowerCase(), 'none', 'dismissed');
      }
      return { status: 204 };
    }
    return undefined;
  };
}

function user(tenant: SandboxTenant, request: SandboxRequest, idOrUpn: string): SandboxAnswer {
  const found = tenant.findUser(idOrUpn);
  if (!found) return notFound(idOrUpn);
  if (request.method === 'GET') return { status: 200, body: select(found, request.query.get('$select')) };
  if (request.method === 'PATCH') {
    const patch = request.body as { accountEnabled?: unknown } | undefined;
    if (typeof patch?.accountEnabled !== 'boolean') return apiError(400, 'Request_BadRequest', 'Invalid value specified for property accountEnabled.');
    // accountEnabled is a sensitive attribute: app-only callers cannot change it on privileged admins.
    if (found.privileged) return apiError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
    found.accountEnabled = patch.accountEnabled;
    return { status: 204 };
  }
  return apiError(405, 'Request_BadRequest', `${request.method} is not supported on users`);
}

function select(user: SandboxUser, fields: string | null): Record<string, unknown> {
  const all: Record<string, unknown> = {
    id: user.id,
    userPrincipalName: user.userPrincipalName,
    displayName: user.displayName,
    accountEnabled: user.accountEnabled,
    userType: user.userType,
    mail: user.mail ?? null,
    onPremisesSamAccountName: user.onPremisesSamAccountName ?? null,
    onPremisesSecurityIdentifier: user.onPremisesSecurityIdentifier ?? null,
    onPremisesUserPrincipalName: user.onPremisesUserPrincipalName ?? null,
  };
  if (!fields) return all;
  return Object.fromEntries(fields.split(',').map((f) => [f, all[f]]));
}

function notFound(id: string): SandboxAnswer {
  return apiError(404, 'Request_ResourceNotFound', `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`);
}

/**
 * PIM for directory roles (reference/graph.md): eligibility schedules, role policies with their approval rule, and
 * schedule requests, each kept in the principal's request history as Graph lists it: adminRemove of an assignment that
 * does not exist answers RoleAssignmentDoesNotExist, of an activation younger than five minutes ActiveDurationTooShort;
 * adminAssign of one that exists RoleAssignmentExists.
 */
function pim(tenant: SandboxTenant, request: SandboxRequest, path: string): SandboxAnswer | undefined {
  const principal = /principalId eq '([0-9a-f-]{36})'/i.exec(request.query.get('$filter') ?? '')?.[1]?.toLowerCase();
  if (path === '/roleManagement/directory/roleEligibilitySchedules' && request.method === 'GET') {
    return { status: 200, body: { value: tenant.roleEligibilities.filter((e) => e.principalId === principal) } };
  }
  if (path === '/roleManagement/directory/roleAssignmentScheduleRequests' && request.method === 'GET') {
    if (!principal) return apiError(400, 'BadRequest', 'filter by principalId');
    return pageOf(
      tenant.roleRequests.filter((r) => r.principalId === principal),
      tenant.graphPageSize,
      request,
      { param: '$skiptoken' },
    );
  }
  if (path === '/policies/roleManagementPolicyAssignments' && request.method === 'GET') {
    const roleId = /roleDefinitionId eq '([0-9a-f-]{36})'/i.exec(request.query.get('$filter') ?? '')?.[1]?.toLowerCase();
    if (!roleId) return apiError(400, 'BadRequest', 'filter by roleDefinitionId');
    const isApprovalRequired = tenant.activationApproval.get(roleId) ?? true;
    return {
      status: 200,
      body: { value: [{ roleDefinitionId: roleId, policy: { rules: [{ id: 'Approval_EndUser_Assignment', setting: { isApprovalRequired } }] } }] },
    };
  }
  const body = request.body as
    { action?: string; principalId?: string; roleDefinitionId?: string; directoryScopeId?: string; justification?: string } | undefined;
  if (request.method !== 'POST' || !body?.principalId || !body.roleDefinitionId || !body.justification) {
    return request.method === 'POST' ? apiError(400, 'InvalidRequest', 'principalId, roleDefinitionId and justification are required') : undefined;
  }
  const match = (r: { principalId: string; roleDefinitionId: string; directoryScopeId: string }) =>
    r.principalId === body.principalId?.toLowerCase() && r.roleDefinitionId === body.roleDefinitionId && r.directoryScopeId === (body.directoryScopeId ?? '/');
  if (path === '/roleManagement/directory/roleAssignmentScheduleRequests') {
    const index = tenant.roleAssignments.findIndex(match);
    if (body.action === 'adminRemove') {
      if (index < 0) return apiError(400, 'RoleAssignmentDoesNotExist', 'The Role assignment does not exist.');
      const assignment = tenant.roleAssignments[index] as SandboxRoleAssignment;
      if (assignment.assignmentType === 'Activated' && Date.now() - Date.parse(assignment.startDateTime) < 5 * 60_000) {
        return apiError(400, 'ActiveDurationTooShort', 'Minimum required activation duration is 5 minutes.');
      }
      tenant.roleAssignments.splice(index, 1);
      const removal = tenant.recordRoleRequest('adminRemove', assignment.principalId, assignment.roleDefinitionId, 'Revoked', {
        justification: body.justification,
      });
      return { status: 201, body: { ...body, ...removal } };
    }
    if (body.action === 'adminAssign') {
      if (index >= 0) return apiError(400, 'RoleAssignmentExists', 'The Role assignment already exists.');
      const principalId = body.principalId.toLowerCase();
      const assignment = tenant.recordRoleRequest('adminAssign', principalId, body.roleDefinitionId, 'Provisioned', { justification: body.justification });
      tenant.assignRole(principalId, body.roleDefinitionId, 'Assigned', 0, assignment.targetScheduleId as string);
      return { status: 201, body: { ...body, ...assignment } };
    }
  }
  if (path === '/roleManagement/directory/roleEligibilityScheduleRequests' && body.action === 'adminAssign') {
    if (tenant.roleEligibilities.some(match)) return apiError(400, 'RoleAssignmentExists', 'The Role assignment already exists.');
    tenant.roleEligibilities.push({
      id: `elig-${Date.now()}`,
      principalId: body.principalId.toLowerCase(),
      roleDefinitionId: body.roleDefinitionId,
      directoryScopeId: body.directoryScopeId ?? '/',
    });
    return { status: 201, body: { id: `req-${Date.now()}`, action: 'adminAssign', status: 'Provisioned', ...body } };
  }
  return apiError(400, 'InvalidRequest', `unsupported action ${body.action} on ${path}`);
}
