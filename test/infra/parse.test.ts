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

  // BCP182 (an error): a variable's for-body must be computable at the start of the deployment, so it may not read a
  // resource's or module's runtime values (identity, properties, outputs) or call reference()/list*(). Such a list
  // belongs in a resource or module property, or an output, where runtime values are allowed.
  it('keeps runtime values out of variable for-expressions', async () => {
    const runtime = /\.(identity|properties|outputs)\b|\b(reference|list\w*)\(/;
    const offending = (await infraFiles()).flatMap((file) =>
      file.root.namedChildren.flatMap((node) => {
        const value = node?.type === 'variable_declaration' ? node.namedChildren.at(-1) : undefined;
        const body = value?.type === 'for_statement' ? value.childForFieldName('body') : undefined;
        return body && runtime.test(body.text) ? [`${file.path}: var ${node!.namedChildren[0]?.text}`] : [];
      }),
    );
    expect(offending).toEqual([]);
  });
});
