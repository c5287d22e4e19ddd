import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';

export interface CallOptions {
  method?: string;
  headers?: Record<string, string>;
  /** A string or bytes are sent as they are; anything else as JSON with Content-Type application/json. */
  body?: unknown;
  query?: Record<string, string>;
  /** The route's parameters (`{key}`), as the Functions host fills them from the path. */
  params?: Record<string, string>;
}

export interface CallResult {
  status: number;
  headers: Record<string, string>;
  json: any;
}

/** Call a registered handler exactly as the Functions host would: a real HttpRequest and InvocationContext. */
export async function call(
  handler: (r: HttpRequest, c: InvocationContext) => Promise<HttpResponseInit>,
  route: string,
  options: CallOptions = {},
): Promise<CallResult> {
  const headers: Record<string, string> = { ...options.headers };
  let body: { string: string } | { bytes: Uint8Array } | undefined;
  if (typeof options.body === 'string') body = { string: options.body };
  else if (options.body instanceof Uint8Array) body = { bytes: options.body };
  else if (options.body !== undefined) {
    body = { string: JSON.stringify(options.body) };
    headers['content-type'] ??= 'application/json';
  }
  const url = new URL(`http://localhost:7071/api/${route}`);
  for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v);
  const request = new HttpRequest({
    method: options.method ?? 'POST',
    url: url.href,
    headers,
    ...(options.params && { params: options.params }),
    ...(body !== undefined && { body }),
  });
  const context = new InvocationContext({ invocationId: 'test-invocation', functionName: route, logHandler: () => undefined });
  const response = await handler(request, context);
  return {
    status: response.status ?? 200,
    headers: Object.fromEntries(new Headers(response.headers as Record<string, string>).entries()),
    json: response.jsonBody,
  };
}
