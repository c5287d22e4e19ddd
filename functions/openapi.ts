import { defineHttpFunction } from '../shared/azure/httpFunction';
import { registry } from '../shared/azure/registry';

/** GET /api/openapi.json — public: the API as an OpenAPI 3.1 document, every route with its role, body and answers. */
export const openapi = defineHttpFunction({
  name: 'openapi',
  route: 'openapi.json',
  methods: ['GET'],
  auth: { public: true, detailRoles: [] },
  async handle() {
    // Loaded on first use: zod's JSON Schema emitter is not needed at cold start.
    const { openApiDocument } = await import('../shared/api/openapi.js');
    return { status: 200, jsonBody: openApiDocument(registry.http) };
  },
});
