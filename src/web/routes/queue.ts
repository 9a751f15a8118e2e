/**
 * /api/queue: the spool as the admin sees it — list (filter by state or text), one message with
 * its last outcomes, retry now, delete, flush (retry everything deferred), download the original.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { audit } from '../auth.ts';
import { HttpError, parseInput } from '../http.ts';
import type { QueueEntryView } from '../services.ts';
import type { RouteOptions } from './options.ts';

const idParam = z.object({ id: z.string().regex(/^[\w.-]{1,128}$/, 'a queue id') });
const listQuery = z.object({
  state: z.string().max(20).optional(),
  q: z.string().max(200).optional().describe('text in sender, recipients, subject or id'),
  route: z.string().max(100).optional().describe('only messages (with recipients) on this route'),
});

export default async function queueRoutes(app: FastifyInstance, { services, logger }: RouteOptions): Promise<void> {
  app.get('/api/queue', async (request) => {
    const { state, q, route } = parseInput(listQuery, request.query);
    let entries = await services.queue.list(state ? { state } : undefined);
    if (route) entries = entries.filter((e) => (e.route ?? '').split(',').includes(route));
    if (q) {
      const needle = q.toLowerCase();
      entries = entries.filter((e) => [e.id, e.mailFrom, e.subject ?? '', ...e.recipients].some((s) => s.toLowerCase().includes(needle)));
    }
    const page = entries.slice(0, 1000);
    return { messages: await withMeaning(page), total: entries.length };
  });

  /**
   * Waiting messages get "what it means" from their last outcomes (show()), so the list says why
   * in words and not only "ECONNREFUSED"; bounded to the first 50 so a big queue stays quick.
   */
  async function withMeaning(list: QueueEntryView[]): Promise<QueueEntryView[]> {
    let budget = 50;
    return Promise.all(list.map(async (e) => {
      if (e.lastMeaning || e.state === 'queued' || e.state === 'active' || budget-- <= 0) return e;
      const d = await services.queue.show(e.id).catch(() => undefined);
      const meaning = d?.outcomes?.find((o) => o.action !== 'delivered' && o.reason)?.reason;
      return meaning && meaning !== e.lastReason ? { ...e, lastMeaning: meaning } : e;
    }));
  }

  app.get('/api/queue/:id', async (request) => {
    const { id } = parseInput(idParam, request.params);
    const m = await services.queue.show(id);
    if (!m) throw new HttpError(404, `no message ${id} in the queue (it may have been delivered: search the history)`);
    return m;
  });

  app.get('/api/queue/:id/raw', async (request, reply) => {
    const { id } = parseInput(idParam, request.params);
    const raw = await services.queue.readMessage(id);
    if (!raw) throw new HttpError(404, `no message ${id} in the queue`);
    audit(logger, request, 'download queued message', { id });
    return reply.header('content-type', 'message/rfc822').header('content-disposition', `attachment; filename="${id}.eml"`).send(raw);
  });

  app.post('/api/queue/:id/retry', async (request) => {
    const { id } = parseInput(idParam, request.params);
    audit(logger, request, 'retry queued message', { id });
    if (!(await services.queue.retry(id))) throw new HttpError(404, `no message ${id} waiting in the queue`);
    return { ok: true };
  });

  app.delete('/api/queue/:id', async (request) => {
    const { id } = parseInput(idParam, request.params);
    audit(logger, request, 'delete queued message', { id });
    if (!(await services.queue.delete(id))) throw new HttpError(404, `no message ${id} in the queue`);
    return { ok: true };
  });

  app.post('/api/queue/flush', async (request) => {
    const n = await services.queue.flush();
    audit(logger, request, 'flush queue', { messages: n });
    return { ok: true, messages: n };
  });
}
