/**
 * smarthost users hash [PASSWORD] · users add FILE NAME — passwords for the SMTP AUTH users file
 * (auth.usersFile) and the console (web.adminPassword), stored as scrypt hashes, never in clear.
 *   hash  prints one hash line; the password comes from the argument or, safer (not in the shell
 *         history), from the first line of standard input.
 *   add   adds or replaces "NAME: <hash>" in a users file (created when missing), keeping the
 *         other entries and comments; the password comes from standard input.
 * An empty password is refused (exit 2).
 */
import type { Command } from 'commander';

async function readPassword(given: string | undefined): Promise<string> {
  const { SmarthostError } = await import('../../core/errors.ts');
  let password = given;
  if (password === undefined) {
    if (process.stdin.isTTY) process.stderr.write('Password (input is echoed; pipe it in to avoid that): ');
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) {
      chunks.push(c as Buffer);
      if (Buffer.concat(chunks).includes(0x0a)) break;
    }
    password = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0];
  }
  if (!password) throw new SmarthostError('SH_USAGE', 'the password is empty');
  return password;
}

export function register(program: Command): void {
  const users = program.command('users').description('passwords for SMTP AUTH users and the console, as scrypt hashes');
  users
    .command('hash')
    .argument('[password]', 'the password (default: read the first line of standard input)')
    .description('print an scrypt hash for a users file or web.adminPassword')
    .action(async (given?: string) => {
      const { hashPassword } = await import('../../core/password.ts');
      process.stdout.write(`${await hashPassword(await readPassword(given))}\n`);
    });
  users
    .command('add')
    .argument('<file>', 'users file (YAML of name: hash)')
    .argument('<name>', 'user name the device will log in with')
    .description('add a user to a users file, or change its password (password from standard input)')
    .action(async (file: string, name: string) => {
      const { hashPassword } = await import('../../core/password.ts');
      const { existsSync, readFileSync, writeFileSync, renameSync } = await import('node:fs');
      const YAML = await import('yaml');
      const { SmarthostError } = await import('../../core/errors.ts');
      const hash = await hashPassword(await readPassword(undefined));
      const doc = existsSync(file) ? YAML.parseDocument(readFileSync(file, 'utf8')) : new YAML.Document({});
      if (doc.errors.length) throw new SmarthostError('SH_CONFIG_INVALID', `${file}: not a YAML users file (${doc.errors[0].message})`, { file });
      if (doc.contents === null) doc.contents = doc.createNode({}) as never;
      const existed = doc.has(name);
      doc.set(name, hash);
      // Write beside and rename, so a crash never leaves half a users file.
      writeFileSync(`${file}.tmp`, doc.toString(), { mode: 0o600 });
      renameSync(`${file}.tmp`, file);
      process.stdout.write(`${existed ? 'changed the password of' : 'added'} user "${name}" in ${file}\n`);
    });
}
