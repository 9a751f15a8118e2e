/** /api/history: search accepted messages (sender, recipient, subject, client, status, time) and one message's timeline. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { HttpError, parseInput } from '../http.ts';
import type { RouteOptions } from './options.ts';

const date = z.string().max(40).refine((s) => !Number.isNaN(Date.parse(s)), 'a date, e.g. 2026-11-25 or 2026-11-25T08:00').transform((s) => new Date(s));
const searchQuery = z.object({
  sender: z.string().max(320).optional(),
  recipient: z.string().max(320).optional(),
  subject: z.string().max(200).optional(),
  client: z.string().max(64).optional(),
  route: z.string().max(100).optional(),
  status: z.enum(['queued', 'active', 'deferred', 'delivered', 'failed', 'deleted', 'badmail', 'parked']).optional(),
  from: date.optional(),
  to: date.optional(),
  limit: z.coerce.number().int().min(1).max(500).optional(),
  cursor: z.string().max(200).optional(),
});
const idParam = z.object({ id: z.string().regex(/^[\w.-]{1,128}$/, 'a queue id') });

export default async function historyRoutes(app: FastifyInstance, { services }: RouteOptions): Promise<void> {
  app.get('/api/history', async (request) => {
    // Empty form fields arrive as '': treat them as absent.
    const raw = Object.fromEntries(Object.entries((request.query ?? {}) as Record<string, string>).filter(([, v]) => v !== ''));
    return services.history.search(parseInput(searchQuery, raw));
  });

  app.get('/api/history/:id', async (request) => {
    const { id } = parseInput(idParam, request.params);
    const m = await services.history.get(id);
    if (!m) throw new HttpError(404, `history has no message ${id}`);
    return m;
  });
}
