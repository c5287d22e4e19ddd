import { ROLES } from '../shared/auth/caller';
import { defineHttpFunction } from '../shared/azure/httpFunction';
import { runtime } from '../shared/runtime';
import { pageSize } from '../shared/analystRequests';

/**
 * GET /api/deadletters — what ended on the side: dead-letter records and failed or dead-lettered actions, the newest
 * `limit` of each (DEFAULT_PAGE unless asked, at most MAX_PAGE), with their totals and whether either was cut.
 */
export const listDeadLetters = defineHttpFunction({
  name: 'listDeadLetters',
  route: 'deadletters',
  methods: ['GET'],
  auth: { roles: [ROLES.read] },
  async handle({ request }) {
    const { analysts } = await runtime();
    return { status: 200, jsonBody: await analysts.deadLetters(pageSize(request.query.get('limit'))) };
  },
});
