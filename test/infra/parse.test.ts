import { describe, expect, it } from 'vitest';
import { infraFiles, parseBicep, resources, valueAt } from './bicep';

describe('the Bicep templates, read offline', () => {
  it('reads Bicep as the grammar does, and names what it cannot read', async () => {
    const good = await parseBicep(`extension microsoftGraphV1
param location string = resourceGroup().location
resource bus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: 'sb-\${uniqueString(resourceGroup().id)}'
  location: location
  properties: { disableLocalAuth: true, minimumTlsVersion: '1.2' }
}
`);
    expect(good.errors).toEqual([]);
    const [bus] = resources(good);
    expect(bus).toMatchObject({ symbol: 'bus', type: 'Microsoft.ServiceBus/namespaces', apiVersion: '2022-10-01-preview' });
    expect(valueAt(bus!.body, 'properties.disableLocalAuth')?.text).toBe('true');
    expect(valueAt(bus!.body, 'properties.nothing')).toBeUndefined();
    const bad = await parseBicep("resource x 'Microsoft.Web/sites@2024-04-01' = {\n  name:\n}\n", 'bad.bicep');
    expect(bad.errors).toEqual([expect.stringMatching(/^bad\.bicep:\d+:\d+: /)]);
  });

  it('parses every file in infra/', async () => {
    for (const file of await infraFiles()) expect(file.errors, file.path).toEqual([]);
  });
});
