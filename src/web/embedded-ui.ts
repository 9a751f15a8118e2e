/**
 * The console's static files served from memory, for the single executable (core/embedded.ts):
 * there is no src/web/ui folder beside the program for @fastify/static to read.
 * Same URLs and types as the folder: /ui/<file>, and / for index.html.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { embeddedAsset } from '../core/embedded.ts';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'application/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

export function serveEmbeddedUi(app: FastifyInstance, keys: string[]): void {
  const files = new Map(keys.map((k) => [k.slice('ui/'.length), embeddedAsset(k)!]));
  const send = (name: string, reply: FastifyReply) => {
    const ext = name.slice(name.lastIndexOf('.'));
    return reply.type(TYPES[ext] ?? 'application/octet-stream').send(files.get(name));
  };
  app.get('/ui/*', (request, reply) => {
    const name = (request.params as { '*': string })['*'];
    return files.has(name) ? send(name, reply) : reply.callNotFound();
  });
  app.get('/', (_request, reply) => send('index.html', reply));
}
