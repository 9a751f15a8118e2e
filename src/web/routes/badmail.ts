/** /api/badmail: failed messages as IIS kept them (.BAD original + .BDR reason in words); retry after a fix; download. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { audit } from '../auth.ts';
import { HttpError, parseInput } from '../http.ts';
import type { RouteOptions } from './options.ts';

// A badmail name is a file name in one folder: no separators, no leading dot.
const nameParam = z.object({ name: z.string().regex(/^[\w][\w.@+-]{0,200}$/, 'a badmail file name without folder') });

/**
 * The lines of a .BDR an admin needs first — who, what the upstream said, what it means — so the
 * list answers "why" without opening the file; the whole text is one click away. A reason file
 * without such lines keeps the summary the service gave.
 */
export function reasonInWords(bdr: string): string | undefined {
  const picked = bdr.split(/\r?\n/).map((l) => l.trim()).filter((l) => /^(Recipient|It said|Meaning):/.test(l));
  return picked.length ? picked.map((l) => l.replace(/:\s+/, ': ')).join(' · ') : undefined;
}

export default async function badmailRoutes(app: FastifyInstance, { services, logger }: RouteOptions): Promise<void> {
  app.get('/api/badmail', async () => {
    const entries = (await services.badmail.list()).slice(0, 500);
    // Reasons are small text files; reading 500 of them is cheap next to an admin's patience.
    const detailed = await Promise.all(entries.map(async (e) => {
      const bdr = await services.badmail.read(e.name).catch(() => undefined);
      return { ...e, summary: (bdr && reasonInWords(bdr.reason)) ?? e.summary };
    }));
    return { entries: detailed };
  });

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
