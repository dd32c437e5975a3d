import { ROLES, type Role } from '../platform/http/auth.js';
import { mintDevToken } from '../platform/http/dev-tokens.js';
import { readStackEnv } from './stack.js';

/**
 * `tsx scripts/dev-token.ts <role> [sub]`: prints a development bearer token (HS256 with
 * JWT_SECRET from the environment or .stack/env, valid 12 hours). Development only.
 */
const DEFAULT_SUB: Record<Role, string> = { admin: 'admin-1', supervisor: 'supervisor-1', offender_manager: 'om-1', analyst: 'analyst-1' };

const [role, sub] = process.argv.slice(2);
if (!role || !(ROLES as readonly string[]).includes(role)) {
  console.error(`usage: tsx scripts/dev-token.ts <${ROLES.join('|')}> [sub]`);
  process.exit(2);
}
const secret = process.env.JWT_SECRET || readStackEnv()?.JWT_SECRET;
if (!secret) {
  console.error('dev-token: JWT_SECRET is not set and .stack/env has none (run npm run stack:up)');
  process.exit(78);
}
console.log(await mintDevToken(secret, sub ?? DEFAULT_SUB[role as Role], role as Role));
