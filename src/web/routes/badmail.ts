/** /api/badmail: failed messages as IIS kept them (.BAD original + .BDR reason in words); retry after a fix; download. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { audit } from '../auth.ts';
import { HttpError, parseInput } from '../http.ts';
import type { RouteOptions } from './options.ts';

// A badmail name is a file name in one folder: no separators, no leading dot.
const nameParam = z.object({ name: z.string().regex(/^[\w][\w.@+-]{0,200}$/, 'a badmail file name without folder') });

export default async function badmailRoutes(app: FastifyInstance, { services, logger }: RouteOptions): Promise<void> {
  app.get('/api/badmail', async () => ({ entries: await services.badmail.list() }));

  app.get('/api/badmail/:name', async (request) => {
    const { name } = parseInput(nameParam, request.params);
    const r = await services.badmail.read(name);
    if (!r) throw new HttpError(404, `no badmail entry ${name}`);
    return { name, ...r };
  });

  app.get('/api/badmail/:name/download', async (request, reply) => {
    const { name } = parseInput(nameParam, request.params);
    const raw = await services.badmail.download(name);
    if (!raw) throw new HttpError(404, `no badmail entry ${name}`);
    audit(logger, request, 'download badmail', { name });
    return reply.header('content-type', 'message/rfc822').header('content-disposition', `attachment; filename="${name}.eml"`).send(raw);
  });

  app.post('/api/badmail/:name/retry', async (request) => {
    const { name } = parseInput(nameParam, request.params);
    audit(logger, request, 'retry badmail (moved back to pickup)', { name });
    if (!(await services.badmail.retry(name))) throw new HttpError(404, `no badmail entry ${name}`);
    return { ok: true };
  });
}
