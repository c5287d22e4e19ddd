import { apiError, type SandboxAnswer } from './routes';
import { defenderRouteOf, type DefenderApiName } from './tenant';

/**
 * The application permissions each Graph and Defender endpoint the sandbox serves accepts, as each API's reference page
 * lists them ("Permissions", least privileged first; any one set suffices). A call whose token holds none gets 403, as
 * in Azure. Written from those pages, not from shared/actions/permissions.ts: tests against the sandbox check that list.
 * ARM (Sentinel) is authorized by Azure RBAC, not by the token's roles: not checked here.
 */
const GRAPH: Array<{ method: string; path: RegExp; anyOf: string[][] }> = [
  { method: 'GET', path: /^\/v1\.0\/users\/[^/]+$/, anyOf: [['User.Read.All'], ['User.ReadWrite.All'], ['Directory.Read.All'], ['Directory.ReadWrite.All']] },
  // accountEnabled: "User.EnableDisableAccount.All and User.Read.All is the least privileged combination".
  {
    method: 'PATCH',
    path: /^\/v1\.0\/users\/[^/]+$/,
    anyOf: [['User.EnableDisableAccount.All', 'User.Read.All'], ['User.ReadWrite.All'], ['Directory.ReadWrite.All']],
  },
  {
    method: 'POST',
    path: /^\/v1\.0\/users\/[^/]+\/revokeSignInSessions$/,
    anyOf: [['User.RevokeSessions.All'], ['User.ReadWrite.All'], ['Directory.ReadWrite.All']],
  },
  { method: 'POST', path: /^\/v1\.0\/users\/[^/]+\/checkMemberGroups$/, anyOf: [['GroupMember.Read.All'], ['Group.Read.All'], ['Directory.Read.All']] },
  { method: 'GET', path: /^\/v1\.0\/identityProtection\/riskyUsers(\/[^/]+)?$/, anyOf: [['IdentityRiskyUser.Read.All'], ['IdentityRiskyUser.ReadWrite.All']] },
  { method: 'POST', path: /^\/v1\.0\/identityProtection\/riskyUsers\/(confirmCompromised|dismiss)$/, anyOf: [['IdentityRiskyUser.ReadWrite.All']] },
  {
    method: 'GET',
    path: /^\/v1\.0\/roleManagement\/directory\/(roleAssignmentScheduleInstances|roleAssignmentScheduleRequests)$/,
    anyOf: [
      ['RoleAssignmentSchedule.Read.Directory'],
      ['RoleManagement.Read.Directory'],
      ['RoleAssignmentSchedule.ReadWrite.Directory'],
      ['RoleManagement.ReadWrite.Directory'],
    ],
  },
  {
    method: 'POST',
    path: /^\/v1\.0\/roleManagement\/directory\/roleAssignmentScheduleRequests$/,
    anyOf: [['RoleAssignmentSchedule.ReadWrite.Directory'], ['RoleManagement.ReadWrite.Directory']],
  },
  {
    method: 'GET',
    path: /^\/v1\.0\/roleManagement\/directory\/roleEligibilitySchedules$/,
    anyOf: [
      ['RoleEligibilitySchedule.Read.Directory'],
      ['RoleManagement.Read.Directory'],
      ['RoleEligibilitySchedule.ReadWrite.Directory'],
      ['RoleManagement.ReadWrite.Directory'],
    ],
  },
  {
    method: 'POST',
    path: /^\/v1\.0\/roleManagement\/directory\/roleEligibilityScheduleRequests$/,
    anyOf: [['RoleEligibilitySchedule.ReadWrite.Directory'], ['RoleManagement.ReadWrite.Directory']],
  },
  {
    method: 'GET',
    path: /^\/v1\.0\/policies\/roleManagementPolicyAssignments$/,
    anyOf: [
      ['RoleManagementPolicy.Read.Directory'],
      ['RoleManagement.Read.Directory'],
      ['RoleManagementPolicy.ReadWrite.Directory'],
      ['RoleManagement.ReadWrite.Directory'],
    ],
  },
];

const MACHINE_READ = [['Machine.Read.All'], ['Machine.ReadWrite.All']];

const DEFENDER: Record<DefenderApiName, string[][]> = {
  'defender-machines': MACHINE_READ,
  'defender-machine': MACHINE_READ,
  'defender-machine-actions': MACHINE_READ,
  'defender-machine-action': MACHINE_READ,
  'defender-isolate': [['Machine.Isolate']],
  'defender-unisolate': [['Machine.Isolate']],
};

/**
 * The 403 Graph or Defender answers a call whose token's `roles` hold no accepted set, or undefined when they do. A
 * Graph or Defender path not listed above is refused too: a new endpoint in the sandbox comes with its permissions.
 */
export function forbidden(method: string, path: string, roles: readonly string[]): SandboxAnswer | undefined {
  const held = (anyOf: string[][]) => anyOf.some((set) => set.every((p) => roles.includes(p)));
  if (path.startsWith('/v1.0/')) {
    const listed = GRAPH.find((e) => e.method === method && e.path.test(path));
    if (listed && held(listed.anyOf)) return undefined;
    // Graph's answer names no permission (reference/graph.md): the engine has to say which one it lacked.
    return apiError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
  }
  if (path.startsWith('/api/')) {
    const route = defenderRouteOf(method, path);
    const anyOf = route ? DEFENDER[route.name] : [];
    if (route && held(anyOf)) return undefined;
    return apiError(
      403,
      'Forbidden',
      `The application does not have any of the required application permissions (${anyOf.map((set) => set.join(' + ')).join(', ')}) to access the resource.`,
    );
  }
  return undefined;
}
