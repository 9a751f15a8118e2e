/** smarthost users — placeholder until its issue lands; replaced by the module owning it. */
import type { Command } from 'commander';

export function register(_program: Command): void {}
