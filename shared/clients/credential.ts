import type { TokenCredential } from '@azure/identity';

let credential: Promise<TokenCredential> | undefined;

/**
 * The engine's one credential: DefaultAzureCredential — the managed identity in Azure (App Service's
 * IDENTITY_ENDPOINT + IDENTITY_HEADER, which the sandbox tenant also serves), a developer's sign-in locally.
 * Never a secret in code or settings. Created on first use (@azure/identity is heavy) and shared by every client.
 */
export function azureCredential(authorityHost: string): Promise<TokenCredential> {
  credential ??= import('@azure/identity').then(({ DefaultAzureCredential }) => new DefaultAzureCredential({ authorityHost }));
  return credential;
}

/** Tests that change the identity settings start over. */
export function resetAzureCredential(): void {
  credential = undefined;
}
