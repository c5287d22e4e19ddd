/** What a sandbox route sees and answers. */
export interface SandboxRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
  /** The audience of the bearer token presented (the API origin it was issued for), or undefined. */
  audience: string | undefined;
}

export interface SandboxAnswer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export type Route = (request: SandboxRequest) => SandboxAnswer | undefined;

/** A Graph- / Defender- / ARM-style error body. */
export const apiError = (status: number, code: string, message: string, headers?: Record<string, string>): SandboxAnswer => ({
  status,
  body: { error: { code, message } },
  ...(headers && { headers }),
});
