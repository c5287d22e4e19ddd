import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { declaration, INFRA, parseBicep, resources, valueAt, valueOf } from './bicep';
import { literal } from './bicepRead';

describe("infra/tenant/idProtectionDiagnostics.bicep, Entra ID's risk logs to the engine's Event Hub", () => {
  it('is a tenant deployment of the Entra diagnostic setting streaming RiskyUsers and UserRiskEvents', async () => {
    const file = await parseBicep(readFileSync(join(INFRA, 'tenant/idProtectionDiagnostics.bicep'), 'utf8'), 'idProtectionDiagnostics.bicep');
    expect(file.errors).toEqual([]);
    expect(file.root.namedChildren.find((node) => node?.type === 'target_scope_assignment')?.text).toBe("targetScope = 'tenant'");
    const [setting] = resources(file);
    expect(setting).toMatchObject({ type: 'microsoft.aadiam/diagnosticSettings', apiVersion: '2017-04-01' });
    expect(valueAt(setting!.body, 'properties.eventHubAuthorizationRuleId')?.text).toBe('eventHubAuthorizationRuleId');
    expect(valueAt(setting!.body, 'properties.eventHubName')?.text).toBe('eventHubName');
    expect(literal(valueOf(declaration(file, 'var', 'categories')))).toEqual(['RiskyUsers', 'UserRiskEvents']);
    expect(valueAt(setting!.body, 'properties.logs')?.text).toMatch(/for category in categories: \{\s*category: category\s*enabled: true\s*\}/);
  });
});
